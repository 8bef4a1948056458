"""Installing the trainer from a wheel on the shared storage into a venv on the target."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from lora_studio.targets import TargetError
from lora_studio.targets.install import install_script, install_trainer
from lora_studio.targets.shell import LocalShell

DOCTOR = 'import json, sys\nprint(json.dumps({"trainer_version": "0.1.0", "python": sys.version.split()[0]}))\n'


def stand_in_wheel(folder: Path) -> Path:
    """A wheel named like the project's, whose `python -m trainer` answers doctor (no torch needed)."""
    files = {"trainer/__init__.py": '__version__ = "0.1.0"\n', "trainer/__main__.py": DOCTOR,
             "lora_studio-0.1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: lora-studio\nVersion: 0.1.0\n"
                                                     "Provides-Extra: trainer\n",
             "lora_studio-0.1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                                  "Tag: py3-none-any\n"}
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text.encode())}")
    record.append("lora_studio-0.1.0.dist-info/RECORD,,")
    files["lora_studio-0.1.0.dist-info/RECORD"] = "\n".join(record) + "\n"
    folder.mkdir(parents=True)
    wheel = folder / "lora_studio-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return wheel


@pytest.mark.slow
def test_install_from_a_wheel_in_a_hostile_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # everything comes from the share: no index needed
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    wheel = stand_in_wheel(tmp_path / "share $(touch PWNED) 'x'" / "wheels")
    venv = tmp_path / "venv ü; touch PWNED"
    python, result = install_trainer(LocalShell(), str(wheel), venv=str(venv), base_python=sys.executable)
    assert python == f"{venv}/bin/python", result.stdout[-500:]
    out = subprocess.run([python, "-m", "trainer"], capture_output=True, text=True, cwd="/", check=True).stdout
    assert '"trainer_version": "0.1.0"' in out
    assert not list(tmp_path.rglob("PWNED")) and not Path("/PWNED").exists()


def test_install_refuses_what_is_not_a_wheel_or_a_relative_venv():
    with pytest.raises(TargetError, match="not a wheel"):
        install_trainer(LocalShell(), "/share/lora_studio.tar.gz")
    with pytest.raises(TargetError, match="not absolute"):
        install_trainer(LocalShell(), "/share/x.whl", venv="venv")
    # A home-relative venv expands on the target ("$HOME" outside the quotes), the rest stays quoted.
    assert '"$HOME"/.local/share/lora-studio/venv/bin/python' in install_script("/s/x.whl")
