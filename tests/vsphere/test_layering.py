"""lora_studio.vsphere runs in the app's worker threads and as a CLI on admin machines without
torch or Qt. Its import statements are checked by the import-linter contracts in pyproject.toml
(targets-no-qt, app-no-training-libraries, app-layers); this checks the imports its third-party
packages make at run time, and that the CLI starts without them."""

from __future__ import annotations

import subprocess
import sys

from .conftest import ROOT

FORBIDDEN = ("torch", "diffusers", "peft", "transformers", "accelerate", "safetensors", "PySide6", "PyQt5", "PyQt6",
             "pyqtgraph", "shiboken6", "qtpy")
MODULES = ("cli", "cloudinit", "cluster", "commands", "datastore", "errors", "gpus", "hardware", "inventory", "newvm",
           "policies", "snapshots", "tasks", "vms")


def test_vsphere_imports_and_its_cli_starts_with_torch_and_qt_unimportable():
    code = ("import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in FORBIDDEN)
            + "".join(f"import lora_studio.vsphere.{m}\n" for m in MODULES)
            + "sys.argv = ['vsphere', '--help']\nimport runpy\ntry:\n    runpy.run_module('lora_studio.vsphere', run_name='__main__')\n"
            + "except SystemExit as done:\n    print('exit', done.code)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "new-vm" in done.stdout and done.stdout.strip().endswith("exit 0")
