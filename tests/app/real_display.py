"""A real X display for the app's tests: Xvfb, xdotool and ImageMagick, as a user's desktop has.

The offscreen platform the other app tests use needs none of the X libraries a desktop
must have, so only a test on a real X server catches a missing one; and only real input
events (xdotool) go through the same path as a user's clicks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from PIL import Image

TOOLS = {"Xvfb": "xvfb", "xdotool": "xdotool", "import": "imagemagick"}


def missing_tools() -> list[str]:
    """The Debian packages of the display tools this machine lacks."""
    return [package for tool, package in TOOLS.items() if shutil.which(tool) is None]


class Xvfb:
    """An X server on a display number it picks itself (no guessing, no race for a free one)."""

    def __init__(self, width: int = 1400, height: int = 900) -> None:
        read_end, write_end = os.pipe()
        self.process = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp"],
            pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            number = pipe.readline().strip()  # written once the server accepts clients
        if not number:
            self.process.kill()
            raise RuntimeError("Xvfb did not start")
        self.display = f":{number}"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a program on this display, with Qt's real X11 platform."""
        env = {**os.environ, "DISPLAY": self.display, "QT_QPA_PLATFORM": "xcb", **extra}
        env.pop("WAYLAND_DISPLAY", None)
        return env

    def screenshot(self, path: Path) -> Path:
        """The whole screen as a PNG, taken by the X server (what a user would see)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["import", "-display", self.display, "-window", "root", str(path)], check=True, timeout=30)
        return path

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def is_blank(path: Path) -> bool:
    """Whether a screenshot is one flat colour (nothing was drawn)."""
    with Image.open(path) as image:
        return all(low == high for low, high in image.convert("RGB").getextrema())
