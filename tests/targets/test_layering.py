"""lora_studio.targets runs in worker threads of the app and on machines without torch or Qt.

Its import statements are checked by the import-linter contracts in pyproject.toml (targets-no-qt,
app-no-training-libraries; tests/test_layering.py runs them); this checks what they cannot see, the
imports its third-party packages make at run time."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ("torch", "diffusers", "peft", "transformers", "accelerate", "safetensors", "PySide6", "PyQt5", "PyQt6",
             "pyqtgraph", "shiboken6", "qtpy")


def test_targets_import_with_torch_and_qt_unimportable():
    code = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in FORBIDDEN) + \
        "import lora_studio.targets, lora_studio.targets.ssh, lora_studio.targets.guestops\nprint('ok')\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
