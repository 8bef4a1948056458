"""build_installer.py end to end: build the Linux bundle, run the frozen app, check the archive.

Slow (about a minute: PyInstaller analyses and copies ~250 MB), so one module-scoped build
serves every test here.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRAINING_LIBS = ("torch", "diffusers", "transformers", "peft", "accelerate", "onnxruntime", "tensorboard")
# What the offscreen platform prints for every shown window; it says nothing about the app.
HARMLESS_STDERR = (r"This plugin does not support propagateSizeHints\(\)", r"This plugin does not support raise\(\)")
# Only these trainer modules may be in the app (torch-free; DESIGN.md section 2).
ALLOWED_TRAINER = re.compile(r"trainer(\.(config(\..*)?|captions(\..*)?|images|dataset_scan|rundir|fsutil|buckets|estimate|"
                             r"checkpoint|problems|model_family|family_specs|model_keys|model_size|causal_lm_folder|model_check|"
                             r"demo_workspace|wording|labeling(\.(registry|merge|args|errors|model_search|base|wd14|"
                             r"image_to_text))?|llm(\.(formats|rows|templates|tokenize))?))?$")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(platform.system() != "Linux", reason="the packaging test builds the Linux archive"),
]


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> dict:
    """Run ``build_installer.py`` once; returns the output folder, bundle, archive and build time."""
    pytest.importorskip("PyInstaller", reason="PyInstaller is not installed (pip install -c constraints.txt "
                                              "pyinstaller)")
    out = tmp_path_factory.mktemp("installer")
    started = time.monotonic()
    result = subprocess.run([sys.executable, str(ROOT / "build_installer.py"), "--output", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=900)
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    print(f"\nbuild_installer.py took {seconds:.0f} s\n{result.stdout[-600:]}")
    archives = list(out.glob("lora-studio-*-linux-*.tar.gz"))
    assert len(archives) == 1, list(out.iterdir())
    return {"out": out, "bundle": out / "bundle" / "lora-studio", "archive": archives[0], "seconds": seconds}


@pytest.fixture(scope="module")
def unpacked(build, tmp_path_factory) -> Path:
    """The archive unpacked, as a user would: the folder inside it."""
    target = tmp_path_factory.mktemp("unpacked")
    with tarfile.open(build["archive"]) as tar:
        tar.extractall(target, filter="tar")
    (folder,) = target.iterdir()
    return folder


def run_self_test(executable: Path, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "LORA_STUDIO_HOME": str(home)}
    env.pop("PYTHONPATH", None)  # the bundle must not lean on the checkout
    return subprocess.run([str(executable), "--self-test"], cwd=home.parent, env=env, capture_output=True,
                          text=True, timeout=120)


def unexpected_stderr(text: str) -> list[str]:
    return [line for line in text.splitlines()
            if line.strip() and not any(re.search(pattern, line) for pattern in HARMLESS_STDERR)]


def test_frozen_app_passes_its_self_test(build, tmp_path):
    started = time.monotonic()
    result = run_self_test(build["bundle"] / "lora-studio", tmp_path / "home")
    print(f"frozen --self-test (start, window shown, checks, exit): {time.monotonic() - started:.2f} s")
    assert result.returncode == 0, result.stderr
    assert "self-test: ok" in result.stdout
    assert unexpected_stderr(result.stderr) == []


def test_bundle_has_no_training_libraries(build):
    from PyInstaller.archive.readers import CArchiveReader

    bundle: Path = build["bundle"]
    names = {p.name.split(".")[0] for p in bundle.rglob("*")}
    assert not names & set(TRAINING_LIBS)
    archive = CArchiveReader(str(bundle / "lora-studio"))
    (pyz,) = [name for name in archive.toc if name.endswith(".pyz")]
    modules = list(archive.open_embedded_archive(pyz).toc)
    assert [m for m in modules if m.split(".")[0] in TRAINING_LIBS] == []
    trainer = [m for m in modules if m.split(".")[0] == "trainer"]
    assert "trainer.config.schema" in trainer
    assert [m for m in trainer if not ALLOWED_TRAINER.match(m)] == []
    size_mb = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20
    print(f"bundle {size_mb:.0f} MB, archive {build['archive'].stat().st_size / 2**20:.0f} MB")
    assert size_mb < 300, "the bundle grew: see what build_installer.py's EXCLUDES let in"


def test_archive_has_desktop_file_icons_and_installer(unpacked):
    assert (unpacked / "lora-studio" / "lora-studio").is_file()
    assert os.access(unpacked / "install.sh", os.X_OK)
    for size in (16, 32, 48, 128, 256, 512):
        assert (unpacked / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "lora-studio.png").is_file()
    entry = (unpacked / "lora-studio.desktop").read_text(encoding="utf-8")
    assert "Icon=lora-studio" in entry and "Terminal=false" in entry


def test_desktop_file_is_valid(unpacked):
    validator = shutil.which("desktop-file-validate")
    if not validator:
        pytest.skip("desktop-file-validate is missing (Debian package desktop-file-utils)")
    result = subprocess.run([validator, str(unpacked / "lora-studio.desktop")], capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_install_script_adds_the_menu_entry_and_uninstalls(unpacked, tmp_path):
    home = tmp_path / "user"
    env = {**os.environ, "HOME": str(home)}
    env.pop("XDG_DATA_HOME", None)
    subprocess.run(["sh", str(unpacked / "install.sh")], env=env, check=True, capture_output=True, timeout=120)
    entry = home / ".local" / "share" / "applications" / "lora-studio.desktop"
    exec_line = next(line for line in entry.read_text(encoding="utf-8").splitlines() if line.startswith("Exec="))
    installed = Path(exec_line.removeprefix("Exec=").strip('"'))
    assert installed.is_file()
    assert (home / ".local" / "share" / "icons" / "hicolor" / "48x48" / "apps" / "lora-studio.png").is_file()
    result = run_self_test(home / ".local" / "bin" / "lora-studio", tmp_path / "app-home")
    assert result.returncode == 0, result.stderr
    subprocess.run(["sh", str(unpacked / "install.sh"), "--uninstall"], env=env, check=True, capture_output=True)
    assert not entry.exists() and not installed.exists()
