"""The house rules on imports: the app never imports the training libraries, the trainer never
imports Qt or the app, and the trainer modules the app shares import without torch.

The rules are import-linter contracts in pyproject.toml ([tool.importlinter]); `lint-imports`
checks every import statement, those inside functions too. What a static contract cannot see,
imports made by third-party packages or through importlib, is checked here by importing the
shared modules in a process where the training libraries cannot be imported (tests/app/test_shell.py
does the same for a started main window).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / ("lint-imports.exe" if os.name == "nt" else "lint-imports")


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]["contracts"]


def _contract(contract_id: str) -> dict:
    return next(contract for contract in _contracts() if contract["id"] == contract_id)


def test_import_contracts_are_kept():
    assert LINT_IMPORTS.exists(), f"{LINT_IMPORTS} is missing: install the test extra (`make test` does)"
    # No config argument: lint-imports reads pyproject.toml from its working folder.
    done = subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    output = f"{done.stdout}\n{done.stderr}"
    assert done.returncode == 0, f"lint-imports exited {done.returncode}:\n{output}"
    assert f"{len(_contracts())} kept, 0 broken" in output, output


def test_shared_trainer_modules_import_without_training_libraries():
    # Make every training library unimportable, import the shared modules, and load the captioner
    # families that trainer.labeling.registry imports through importlib (the app calls it).
    blocked = _contract("app-no-training-libraries")["forbidden_modules"]
    shared = _contract("shared-trainer-modules-torch-free")["source_modules"]
    code = ("import sys\n" + "".join(f"sys.modules[{lib!r}] = None\n" for lib in blocked)
            + "".join(f"import {module}\n" for module in shared)
            + "trainer.labeling.registry.families()\nprint('ok')\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
