"""The house rules on imports: the app never imports the training libraries, the trainer never
imports Qt, and the trainer modules the app shares import without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAINING_LIBS = ("torch", "diffusers", "peft", "transformers", "accelerate", "safetensors", "bitsandbytes")
QT_LIBS = ("PySide6", "PyQt5", "PyQt6", "pyqtgraph", "qtpy", "shiboken6")
# Modules of trainer/ that the desktop app imports: they must work without torch.
SHARED_TRAINER_MODULES = ("trainer", "trainer.config", "trainer.config.schema", "trainer.captions", "trainer.rundir",
                          "trainer.images", "trainer.dataset_scan", "trainer.buckets", "trainer.fsutil",
                          "trainer.lora_metadata", "trainer.demo_workspace", "trainer.checkpoint", "trainer.estimate",
                          "trainer.resume", "trainer.labeling.errors", "trainer.labeling.merge",
                          "trainer.labeling.model_search", "trainer.labeling.registry", "trainer.labeling.args")


def _imported_roots(folder: Path) -> dict[str, list[str]]:
    """Top-level package of every import statement in every .py file under folder."""
    found: dict[str, list[str]] = {}
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_app_never_imports_training_libraries():
    imports = _imported_roots(ROOT / "lora_studio")
    offenders = {lib: imports[lib] for lib in TRAINING_LIBS if lib in imports}
    assert not offenders, f"lora_studio/ imports training libraries: {offenders}"


def test_trainer_never_imports_qt():
    imports = _imported_roots(ROOT / "trainer")
    offenders = {lib: imports[lib] for lib in QT_LIBS if lib in imports}
    assert not offenders, f"trainer/ imports Qt: {offenders}"


def test_shared_trainer_modules_import_without_torch():
    # Make every training library unimportable, then import the shared modules.
    blocker = "import sys\n" + "".join(f"sys.modules[{lib!r}] = None\n" for lib in TRAINING_LIBS)
    code = blocker + "".join(f"import {module}\n" for module in SHARED_TRAINER_MODULES) + "print('ok')\n"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
