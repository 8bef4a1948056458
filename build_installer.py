"""Build LoRA Studio's installer for the OS this runs on, and (``--trainer``) the GPU VMs' package.

    python build_installer.py                 # dist-installer/: bundle + archive/installer
    python build_installer.py --trainer       # also the trainer wheel + pinned requirements
    python build_installer.py --output out --version 0.2.0 --clean

The app is a one-folder PyInstaller bundle (one folder starts faster than one file, which
unpacks itself on every start). Torch and the other training libraries stay out: the app
never imports them (training runs as a trainer process), and they would add gigabytes.
Then, per OS: Linux a ``.tar.gz`` with a ``.desktop`` file, hicolor icons and ``install.sh``
(per user, no root); Windows an Inno Setup script (compiled when ``iscc`` is present);
macOS a ``.app`` (and a ``.dmg`` when ``hdiutil`` is present).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
APP_NAME = "LoRA Studio"
APP_ID = "lora-studio"  # executable, .desktop file and icon name
ICONS = ROOT / "resources" / "app-icons"
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
                   "trainer.llm.templates", "trainer.llm.tokenize")
# (source, destination inside the bundle): the same relative places as in a checkout, so
# lora_studio.paths and lora_studio.tokens find them the same way.
DATA = (("resources", "resources"),
        ("trainer/resources/clip_tokenizer", "trainer/resources/clip_tokenizer"))
TRAINER_EXTRA_BASE = ("pillow", "pyyaml", "numpy")  # the trainer's needs from the base dependencies


@dataclass
class Built:
    """One thing the build made, for the closing report."""
    kind: str
    path: Path

    def size(self) -> int:
        if self.path.is_dir():
            return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file() and not f.is_symlink())
        return self.path.stat().st_size


def log(message: str) -> None:
    print(f"[build] {message}", flush=True)


def app_version() -> str:
    """``lora_studio.__version__`` read from the source (importing it would start Qt's guard)."""
    text = (ROOT / "lora_studio" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
    if not match:
        raise SystemExit("no __version__ in lora_studio/__init__.py")
    return match.group(1)


def human(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{size} B"
        size /= 1024
    return str(size)


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
        _set_plist_version(final, version)
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


def desktop_entry(exec_path: str, version: str) -> str:
    """The freedesktop ``.desktop`` file; ``install.sh`` rewrites Exec with the installed path."""
    return textwrap.dedent(f"""\
        [Desktop Entry]
        Type=Application
        Version=1.0
        Name={APP_NAME}
        GenericName=LoRA Trainer
        Comment=Caption image datasets and train LoRA adapters on your own GPU machines
        Exec={exec_path}
        Icon={APP_ID}
        Terminal=false
        Categories=Graphics;
        Keywords=LoRA;Stable Diffusion;training;captions;
        StartupWMClass={APP_ID}
        X-LoRA-Studio-Version={version}
        """)


INSTALL_SH = r"""#!/bin/sh
# Install LoRA Studio for this user: no root, no Python needed.
#   ./install.sh              install (or update) into ~/.local
#   ./install.sh --uninstall  remove it again
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
DATA=${XDG_DATA_HOME:-$HOME/.local/share}
# Not under $DATA/lora-studio: that folder holds the user's settings and caches (app_home()).
APP_DIR=$HOME/.local/opt/lora-studio
BIN_DIR=$HOME/.local/bin
refresh() {
    # Menus pick the entry up without these; they only make it appear at once.
    command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$DATA/applications" || true
    command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$DATA/icons/hicolor" 2>/dev/null || true
}
if [ "${1:-}" = "--uninstall" ]; then
    rm -rf "$APP_DIR" "$DATA/applications/lora-studio.desktop" "$BIN_DIR/lora-studio"
    find "$DATA/icons/hicolor" -name 'lora-studio.*' -delete 2>/dev/null || true
    refresh
    echo "LoRA Studio removed (your settings and workspaces are kept)."
    exit 0
fi
mkdir -p "$(dirname "$APP_DIR")" "$DATA/applications" "$BIN_DIR"
rm -rf "$APP_DIR.new"
cp -R "$HERE/lora-studio" "$APP_DIR.new"
# Swap in one step so that an update never leaves a half-copied app behind.
rm -rf "$APP_DIR.old"; [ -d "$APP_DIR" ] && mv "$APP_DIR" "$APP_DIR.old"
mv "$APP_DIR.new" "$APP_DIR"; rm -rf "$APP_DIR.old"
mkdir -p "$DATA/icons/hicolor"
cp -R "$HERE/icons/hicolor/." "$DATA/icons/hicolor/"
sed "s|^Exec=.*|Exec=\"$APP_DIR/lora-studio\"|" "$HERE/lora-studio.desktop" > "$DATA/applications/lora-studio.desktop"
chmod 644 "$DATA/applications/lora-studio.desktop"
ln -sf "$APP_DIR/lora-studio" "$BIN_DIR/lora-studio"
refresh
echo "LoRA Studio installed: find it in your applications menu, or run $BIN_DIR/lora-studio"
"""


def linux_package(bundle: Path, out: Path, version: str) -> Path:
    """``lora-studio-<version>-linux-<arch>.tar.gz``: bundle, .desktop, icons, install.sh."""
    stem = f"{APP_ID}-{version}-linux-{platform.machine()}"
    stage = out / "build" / stem
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    shutil.copytree(bundle, stage / APP_ID, symlinks=True)
    shutil.copytree(ICONS / "hicolor", stage / "icons" / "hicolor")
    (stage / f"{APP_ID}.desktop").write_text(desktop_entry(APP_ID, version), encoding="utf-8")
    script = stage / "install.sh"
    script.write_text(INSTALL_SH, encoding="utf-8")
    script.chmod(0o755)
    (stage / "README.txt").write_text(
        f"{APP_NAME} {version}\n\nRun ./install.sh to add it to your applications menu "
        "(per user, no root).\nOr start it in place: ./lora-studio/lora-studio\n"
        "Remove it with ./install.sh --uninstall\n", encoding="utf-8")
    archive = out / f"{stem}.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
        tar.add(stage, arcname=stem)
    return archive


# ---------------------------------------------------------------- Windows


def inno_setup_script(bundle: Path, out: Path, version: str) -> Path:
    """An Inno Setup script: per-user install (no admin), Start menu entry, uninstaller."""
    iss = out / f"{APP_ID}-{version}.iss"
    iss.write_text(textwrap.dedent(f"""\
        ; Generated by build_installer.py; compile with: iscc "{iss.name}"
        [Setup]
        AppId={{{{7C1E7A52-3D4B-4E0C-9B8E-2F6A1D5C9E41}}
        AppName={APP_NAME}
        AppVersion={version}
        AppPublisher={APP_NAME}
        DefaultDirName={{autopf}}\\{APP_NAME}
        DefaultGroupName={APP_NAME}
        PrivilegesRequired=lowest
        PrivilegesRequiredOverridesAllowed=dialog
        OutputDir={out}
        OutputBaseFilename={APP_ID}-{version}-setup
        SetupIconFile={ICONS / f"{APP_ID}.ico"}
        UninstallDisplayIcon={{app}}\\{APP_ID}.exe
        Compression=lzma2
        SolidCompression=yes
        WizardStyle=modern
        ArchitecturesInstallIn64BitMode=x64compatible

        [Files]
        Source: "{bundle}\\*"; DestDir: "{{app}}"; Flags: ignoreversion recursesubdirs createallsubdirs

        [Icons]
        Name: "{{group}}\\{APP_NAME}"; Filename: "{{app}}\\{APP_ID}.exe"
        Name: "{{autodesktop}}\\{APP_NAME}"; Filename: "{{app}}\\{APP_ID}.exe"; Tasks: desktopicon

        [Tasks]
        Name: "desktopicon"; Description: "Create a desktop shortcut"; Flags: unchecked

        [Run]
        Filename: "{{app}}\\{APP_ID}.exe"; Description: "Start {APP_NAME}"; Flags: nowait postinstall skipifsilent
        """), encoding="utf-8")
    return iss


def windows_package(bundle: Path, out: Path, version: str) -> list[Built]:
    iss = inno_setup_script(bundle, out, version)
    built = [Built("Inno Setup script", iss)]
    iscc = shutil.which("iscc") or shutil.which("ISCC")
    if iscc:
        subprocess.run([iscc, "/Q", str(iss)], check=True)
        built.append(Built("installer", out / f"{APP_ID}-{version}-setup.exe"))
    else:
        log("iscc not found: install Inno Setup 6 and run iscc on the .iss to make the setup .exe")
    return built


# ---------------------------------------------------------------- macOS


def _set_plist_version(app: Path, version: str) -> None:
    import plistlib
    plist = app / "Contents" / "Info.plist"
    data = plistlib.loads(plist.read_bytes())
    data.update(CFBundleShortVersionString=version, CFBundleVersion=version, CFBundleName=APP_NAME,
                CFBundleDisplayName=APP_NAME, NSHighResolutionCapable=True)
    plist.write_bytes(plistlib.dumps(data))


def mac_package(app: Path, out: Path, version: str) -> list[Built]:
    built = [Built(".app", app)]
    if shutil.which("hdiutil"):
        dmg = out / f"{APP_ID}-{version}-macos.dmg"
        dmg.unlink(missing_ok=True)
        subprocess.run(["hdiutil", "create", "-volname", APP_NAME, "-srcfolder", str(app), "-ov",
                        "-format", "UDZO", str(dmg)], check=True)
        built.append(Built("disk image", dmg))
    else:
        log("hdiutil not found: no .dmg (the .app is ready to zip)")
    return built


# ---------------------------------------------------------------- trainer for the GPU VMs


def trainer_requirements(version: str) -> str:
    """Pinned requirements of the trainer: the ``trainer`` extra and its dependencies, closed over.

    Versions come from constraints.txt (what the tests ran with), else from this environment.
    """
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, pin = line.split("==", 1)
            pins[canonicalize_name(name)] = pin.strip()
    project = metadata.metadata("lora-studio")
    wanted: list[Requirement] = [Requirement(r) for r in project.get_all("Requires-Dist") or []]
    roots = [r for r in wanted if r.marker and "trainer" in str(r.marker)]
    roots += [r for r in wanted if canonicalize_name(r.name) in TRAINER_EXTRA_BASE]
    env = {"extra": ""}
    seen: dict[str, str] = {}
    queue = [r for r in roots]
    while queue:
        req = queue.pop()
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            seen[name] = pins.get(name, "")
            continue
        seen[name] = pins.get(name, dist.version)
        for text in dist.requires or []:
            child = Requirement(text)
            if child.marker is None or child.marker.evaluate(env):
                queue.append(child)
    lines = [
        f"# LoRA Studio trainer {version}: pinned requirements for the GPU VMs (Linux, Python 3.11+).",
        "# Made by build_installer.py --trainer from constraints.txt (the versions the tests ran with).",
        "#",
        "# torch: the PyPI wheel for Linux x86_64 is the CUDA 12 build, so on a GPU VM",
        "#   pip install -r requirements-trainer.txt",
        "# installs CUDA torch. For another CUDA version add, for example,",
        "#   --extra-index-url https://download.pytorch.org/whl/cu121",
        "# (same torch version). The CI machines use the CPU build of the same version.",
        "# Then: pip install --no-deps lora_studio-*.whl  (the trainer package; `lora-train doctor`).",
    ]
    # Drop the torch CUDA runtime pieces (nvidia-*, triton): torch's own pins choose them per platform.
    for name in sorted(seen):
        if name.startswith("nvidia-") or name == "triton":
            continue
        lines.append(f"{name}=={seen[name]}" if seen[name] else name)
    return "\n".join(lines) + "\n"


def trainer_package(out: Path, version: str) -> list[Built]:
    """The project wheel (the trainer lives in it) plus requirements-trainer.txt."""
    folder = out / "trainer"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.whl"):
        old.unlink()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(folder), str(ROOT)], check=True)
    wheels = sorted(folder.glob("*.whl"))
    requirements = folder / "requirements-trainer.txt"
    requirements.write_text(trainer_requirements(version), encoding="utf-8")
    (folder / "INSTALL.txt").write_text(textwrap.dedent(f"""\
        LoRA Studio trainer {version} for the GPU VMs

        Copy this folder to the shared datastore (for example /data/lora/_install) and on each VM:

            python3 -m venv /opt/lora-trainer
            /opt/lora-trainer/bin/pip install -r requirements-trainer.txt
            /opt/lora-trainer/bin/pip install --no-deps {wheels[0].name if wheels else 'lora_studio-*.whl'}
            /opt/lora-trainer/bin/python -m trainer doctor

        The VM needs no internet at run time: models and tokenizers are read from the datastore.
        """), encoding="utf-8")
    return [Built("trainer wheel", w) for w in wheels] + [Built("trainer requirements", requirements)]


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
