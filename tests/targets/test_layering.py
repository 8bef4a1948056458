"""lora_studio.targets runs in worker threads of the app and on machines without torch or Qt."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "lora_studio" / "targets"
FORBIDDEN = ("torch", "diffusers", "peft", "transformers", "accelerate", "safetensors", "PySide6", "PyQt5", "PyQt6",
             "pyqtgraph", "shiboken6", "qtpy")


def test_targets_never_import_training_libraries_or_qt():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            offenders += [f"{path.name}:{node.lineno} {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert not offenders


def test_targets_import_with_torch_and_qt_unimportable():
    code = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in FORBIDDEN) + \
        "import lora_studio.targets, lora_studio.targets.ssh, lora_studio.targets.guestops\nprint('ok')\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
