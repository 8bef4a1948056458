"""Build LoRA Studio's installer for the OS this runs on, and (``--trainer``) the GPU VMs' package.

    python build_installer.py                 # dist-installer/: bundle + archive/installer
    python build_installer.py --trainer       # also the trainer wheel + pinned requirements
    python build_installer.py --output out --version 0.2.0 --clean

The app is a one-folder PyInstaller bundle (one folder starts faster than one file, which
unpacks itself on every start). Torch and the other training libraries stay out: the app
never imports them (training runs as a trainer process), and they would add gigabytes.
Then, per OS: Linux a ``.tar.gz`` with a ``.desktop`` file, hicolor icons and ``install.sh``
(per user, no root); Windows an Inno Setup script (compiled when ``iscc`` is present);
macOS a ``.app`` (and a ``.dmg`` when ``hdiutil`` is present): see ``installer/``.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from installer.common import APP_ID, APP_NAME, ICONS, ROOT, Built, app_version, human, log
from installer.os_packages import linux_package, mac_package, set_plist_version, windows_package
from installer.trainer_package import trainer_package

# Training libraries: the app never imports them (see DESIGN.md section 2).
EXCLUDES = ("torch", "torchvision", "diffusers", "transformers", "peft", "accelerate", "onnxruntime",
            "tensorboard", "safetensors", "onnx", "triton", "bitsandbytes", "xformers",
            # Nor the trainer's torch modules, test tools or GUI toolkits the app does not use.
            # (trainer.labeling's families stay: the app checks captioner folders with them; they
            # import torch/onnxruntime only when loading a model, which the app never does.)
            "trainer.recipe", "trainer.models", "trainer.cli", "trainer.labeling.cli", "trainer.labeling.job",
            "trainer.labeling.tiny", "trainer.train_command",
            "trainer.resume", "trainer.optim", "trainer.precision", "trainer.distributed", "tkinter", "matplotlib", "scipy", "IPython", "pytest",
            "hypothesis", "PyInstaller", "PyQt5", "PyQt6", "PySide2",
            # pyqtgraph's optional 3D views and Qt's test module: the app uses neither. (PySide6.QtOpenGL
            # must stay: pyqtgraph's plot curves import it.)
            "pyqtgraph.opengl", "OpenGL", "PySide6.QtTest")
# The torch-free trainer modules the app imports; listed so a lazy import is never missed.
TRAINER_MODULES = ("trainer.config", "trainer.config.schema", "trainer.config.loader", "trainer.config.migrate",
                   "trainer.config.family_checks", "trainer.config.value_checks", "trainer.config.cross_checks",
                   "trainer.config.yaml_edit", "trainer.config.kohya_import", "trainer.captions", "trainer.images",
                   "trainer.dataset_scan", "trainer.rundir", "trainer.fsutil", "trainer.buckets",
                   "trainer.estimate", "trainer.demo_workspace", "trainer.checkpoint", "trainer.problems",
                   "trainer.model_family", "trainer.family_specs", "trainer.model_keys", "trainer.causal_lm_folder", "trainer.model_check", "trainer.labeling.registry",
                   "trainer.labeling.merge", "trainer.labeling.args", "trainer.labeling.errors",
                   "trainer.labeling.model_search", "trainer.labeling.base", "trainer.labeling.wd14",
                   "trainer.labeling.image_to_text", "trainer.llm", "trainer.llm.formats", "trainer.llm.rows",
                   "trainer.llm.templates", "trainer.llm.tokenize", "trainer.wording", "trainer.model_size")
# (source, destination inside the bundle): the same relative places as in a checkout, so
# lora_studio.paths and lora_studio.tokens find them the same way.
DATA = (("resources", "resources"),
        ("trainer/resources/clip_tokenizer", "trainer/resources/clip_tokenizer"))


# ---------------------------------------------------------------- PyInstaller bundle


def windows_version_file(work: Path, version: str) -> Path:
    """The VSVersionInfo text PyInstaller embeds in the .exe (Explorer's Details tab)."""
    numbers = (tuple(int(p) for p in re.findall(r"\d+", version)[:4]) + (0, 0, 0, 0))[:4]
    path = work / "version_info.txt"
    path.write_text(textwrap.dedent(f"""\
        VSVersionInfo(
          ffi=FixedFileInfo(filevers={numbers}, prodvers={numbers}),
          kids=[StringFileInfo([StringTable('040904B0', [
            StringStruct('CompanyName', '{APP_NAME}'),
            StringStruct('FileDescription', '{APP_NAME}'),
            StringStruct('FileVersion', '{version}'),
            StringStruct('ProductName', '{APP_NAME}'),
            StringStruct('ProductVersion', '{version}'),
            StringStruct('OriginalFilename', '{APP_ID}.exe')])]),
            VarFileInfo([VarStruct('Translation', [1033, 1200])])])
        """), encoding="utf-8")
    return path


def pyinstaller_bundle(out: Path, version: str, clean: bool) -> Path:
    """Run PyInstaller; returns the one-folder bundle (or the .app on macOS)."""
    work = out / "build"
    work.mkdir(parents=True, exist_ok=True)
    # PyInstaller needs a script, and lora_studio/__main__.py uses relative imports.
    launcher = work / "launch_lora_studio.py"
    launcher.write_text("import sys\nfrom lora_studio.__main__ import main\nsys.exit(main())\n", encoding="utf-8")
    sep = os.pathsep
    args = [sys.executable, "-m", "PyInstaller", str(launcher), "--name", APP_ID, "--onedir", "--windowed",
            "--noconfirm", "--noupx", "--log-level", "WARN", "--paths", str(ROOT),
            "--distpath", str(out / "bundle"), "--workpath", str(work / "pyinstaller"), "--specpath", str(work),
            "--collect-submodules", "lora_studio"]
    if clean:
        args.append("--clean")
    for source, dest in DATA:
        args += ["--add-data", f"{ROOT / source}{sep}{dest}"]
    for module in TRAINER_MODULES:
        args += ["--hidden-import", module]
    for module in EXCLUDES:
        args += ["--exclude-module", module]
    system = platform.system()
    if system == "Windows":
        args += ["--icon", str(ICONS / f"{APP_ID}.ico"), "--version-file", str(windows_version_file(work, version))]
    elif system == "Darwin":
        args += ["--icon", str(ICONS / f"{APP_ID}.icns"), "--osx-bundle-identifier", "org.lorastudio.app"]
    log("PyInstaller: " + " ".join(args[3:6]) + " ...")
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    subprocess.run(args, check=True, cwd=ROOT, env=env)
    if system == "Darwin":
        app = out / "bundle" / f"{APP_ID}.app"
        final = out / "bundle" / f"{APP_NAME}.app"
        if final.exists():
            shutil.rmtree(final)
        app.rename(final)
        set_plist_version(final, version)
        return final
    bundle = out / "bundle" / APP_ID
    if system == "Linux":
        strip_libpython(bundle)
    return bundle


def strip_libpython(bundle: Path) -> None:
    """Drop the debug symbols of libpython (about 18 MB of the bundle).

    Only libpython: PyInstaller's ``--strip`` also strips the wheels' patchelf-ed libraries
    (numpy's OpenBLAS), which then fail to load ("ELF load command ... not page-aligned").
    """
    strip = shutil.which("strip")
    if not strip:
        return
    for lib in bundle.glob("_internal/libpython3*.so*"):
        if lib.is_file() and not lib.is_symlink():
            subprocess.run([strip, "--strip-debug", str(lib)], check=False)


def check_bundle(bundle: Path) -> None:
    """Refuse a bundle that picked up a training library (a stray import would add gigabytes)."""
    banned = ("torch", "diffusers", "transformers", "peft", "accelerate", "onnxruntime", "tensorboard")
    found = sorted({p.name for p in bundle.rglob("*") if p.is_dir() and p.name in banned})
    if found:
        raise SystemExit(f"the bundle contains training libraries {found}: find the import and exclude it")


# ---------------------------------------------------------------- Linux


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build LoRA Studio's installer for this OS.")
    parser.add_argument("--output", type=Path, default=ROOT / "dist-installer", help="output folder")
    parser.add_argument("--version", default=None, help="version to stamp (default: lora_studio.__version__)")
    parser.add_argument("--clean", action="store_true", help="delete the output folder and PyInstaller caches first")
    parser.add_argument("--trainer", action="store_true", help="also build the trainer wheel + requirements")
    parser.add_argument("--trainer-only", action="store_true", help="build only the trainer package")
    args = parser.parse_args(argv)
    version = args.version or app_version()
    out = args.output.resolve()
    if args.clean and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    built: list[Built] = []
    if not args.trainer_only:
        bundle = pyinstaller_bundle(out, version, args.clean)
        check_bundle(bundle)
        system = platform.system()
        if system == "Linux":
            built += [Built("bundle", bundle), Built("archive", linux_package(bundle, out, version))]
        elif system == "Windows":
            built += [Built("bundle", bundle)] + windows_package(bundle, out, version)
        elif system == "Darwin":
            built += mac_package(bundle, out, version)
        else:
            built.append(Built("bundle", bundle))
    if args.trainer or args.trainer_only:
        built += trainer_package(out, version)
    print(f"\nBuilt {APP_NAME} {version} for {platform.system()} in {time.monotonic() - started:.0f} s:")
    for item in built:
        print(f"  {item.kind:<22} {human(item.size()):>10}  {item.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
