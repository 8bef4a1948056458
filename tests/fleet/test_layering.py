"""lora_studio.fleet runs in the app's workers and in scripts or test processes without Qt or torch.

Its import statements are checked by the import-linter contracts in pyproject.toml (targets-no-qt,
app-layers; tests/test_layering.py runs them); this checks what they cannot see, the imports made
at run time by the packages it uses."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ("torch", "diffusers", "peft", "transformers", "accelerate", "safetensors", "PySide6", "PyQt5", "PyQt6",
             "pyqtgraph", "shiboken6", "qtpy")


def test_the_queue_imports_with_torch_and_qt_unimportable():
    code = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in FORBIDDEN) + \
        "import lora_studio.fleet, lora_studio.fleet.dispatch\nprint('ok')\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
