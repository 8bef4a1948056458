"""Before the first window on Linux: can Qt's xcb platform plugin load here?

A fresh Debian/Ubuntu desktop lacks some of the X libraries the plugin links to
(`libxcb-cursor0`, `libxcb-icccm4`, `libxcb-keysyms1`, ...), and Qt then aborts with
"could not load the Qt platform plugin xcb" and nothing that says what to install. We ask
the dynamic linker (`ldd`, which runs none of the plugin's code) which libraries it cannot
find and name the packages that hold them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

# Sonames whose Debian package name does not follow the usual rule (see `debian_package`).
_PACKAGE_EXCEPTIONS = {"libGL.so.1": "libgl1", "libEGL.so.1": "libegl1", "libOpenGL.so.0": "libopengl0"}
_NOT_FOUND = re.compile(r"^\s*(\S+)\s*=>\s*not found", re.MULTILINE)


def debian_package(soname: str) -> str:
    """The Debian package that ships ``soname`` by Debian's naming rule: `libfoo-bar.so.4` -> `libfoo-bar4`,
    `libxkbcommon-x11.so.0` -> `libxkbcommon-x11-0` (a hyphen when the name ends in a digit)."""
    if soname in _PACKAGE_EXCEPTIONS:
        return _PACKAGE_EXCEPTIONS[soname]
    name, _, version = soname.partition(".so.")
    version = version.split(".")[0]
    name = name.lower()
    return f"{name}-{version}" if name[-1:].isdigit() else f"{name}{version}"


def xcb_plugin() -> Path | None:
    """Qt's xcb platform plugin as installed with PySide6 (None when there is none)."""
    try:
        import PySide6
    except ImportError:
        return None
    root = Path(PySide6.__file__).parent
    for candidate in (root / "Qt" / "plugins" / "platforms" / "libqxcb.so", root / "plugins" / "platforms" / "libqxcb.so"):
        if candidate.exists():
            return candidate
    return None


def missing_libraries(plugin: Path) -> list[str]:
    """The shared libraries the plugin needs that the linker cannot find (empty when all load)."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return []  # nothing to ask: let Qt try
    found: set[str] = set()
    qt_libs = plugin.parents[2] / "lib"
    # The plugin and the Qt library it wraps (its X dependencies live in both).
    targets = [plugin, *sorted(qt_libs.glob("libQt6XcbQpa.so*"))[:1]]
    # Where the app finds libraries that a plain ldd would not: Qt's own folder and, in the
    # frozen bundle, the bundle's (the libraries it carries must not count as missing).
    folders = [str(qt_libs), *([getattr(sys, "_MEIPASS")] if hasattr(sys, "_MEIPASS") else [])]
    env = {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join([*folders, os.environ.get("LD_LIBRARY_PATH", "")])}
    for target in targets:
        try:
            output = subprocess.run([ldd, str(target)], capture_output=True, text=True, timeout=20, env=env).stdout
        except (OSError, subprocess.SubprocessError):
            return []
        found.update(_NOT_FOUND.findall(output))
    return sorted(found)


def wants_xcb() -> bool:
    """Whether Qt will pick the xcb platform: Linux, an X display, no other platform asked for."""
    if not sys.platform.startswith("linux"):
        return False
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform:
        return platform.split(":")[0] == "xcb"
    return bool(os.environ.get("DISPLAY")) and not os.environ.get("WAYLAND_DISPLAY")


def xcb_problem() -> str | None:
    """What to tell the user when the xcb plugin cannot load, with the packages to install; else None."""
    if not wants_xcb():
        return None
    plugin = xcb_plugin()
    if plugin is None:
        return None
    missing = missing_libraries(plugin)
    if not missing:
        return None
    packages = sorted({debian_package(name) for name in missing})
    return (f"LoRA Studio cannot open a window: Qt's X11 (xcb) platform plugin needs {', '.join(missing)}, which "
            f"this system lacks.\nInstall them (Debian/Ubuntu):\n\n    sudo apt-get install {' '.join(packages)}\n\n"
            "(other distributions: the packages that provide those files), then start LoRA Studio again.")
