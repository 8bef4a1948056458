"""``build_installer.py --trainer-only``: the wheel and pinned requirements for the GPU VMs."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_trainer_wheel_and_pinned_requirements(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "build_installer.py"), "--trainer-only", "--output",
                             str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "trainer wheel" in result.stdout and "trainer requirements" in result.stdout
    (wheel,) = (tmp_path / "trainer").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "trainer/cli.py" in names and "trainer/resources/clip_tokenizer/vocab.json" in names
    lines = (tmp_path / "trainer" / "requirements-trainer.txt").read_text(encoding="utf-8").splitlines()
    pins = dict(line.split("==", 1) for line in lines if line and not line.startswith("#"))
    constraints = {name.lower(): pin for name, pin in (line.split("==", 1) for line in
                   (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines()
                   if "==" in line and not line.startswith("#"))}
    for name in ("torch", "diffusers", "peft", "transformers", "safetensors", "pyyaml", "pillow"):
        assert pins[name] == constraints[name], name
    assert "pyside6-essentials" not in pins and "paramiko" not in pins  # the GUI's needs stay off the VMs
    assert any("CUDA" in line for line in lines if line.startswith("#"))


def test_app_icons_render_in_every_size(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "make_icons.py"), "--output", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 0, result.stderr
    from PIL import Image
    for size in (16, 32, 48, 256, 512):
        with Image.open(tmp_path / "hicolor" / f"{size}x{size}" / "apps" / "lora-studio.png") as image:
            assert image.size == (size, size) and image.mode == "RGBA"
    with Image.open(tmp_path / "lora-studio.ico") as ico:
        assert (256, 256) in ico.info["sizes"] and (16, 16) in ico.info["sizes"]
    with Image.open(tmp_path / "lora-studio.icns") as icns:
        assert icns.size[0] >= 512
