"""What the build's steps share: the checkout, the app's names, the pinned versions, a built item and the log."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP_NAME = "LoRA Studio"
APP_ID = "lora-studio"  # executable, .desktop file and icon name
ICONS = ROOT / "resources" / "app-icons"


@dataclass
class Built:
    """One thing the build made, for the closing report."""
    kind: str
    path: Path

    def size(self) -> int:
        """Its size in bytes (a folder's files together)."""
        if self.path.is_dir():
            return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file() and not f.is_symlink())
        return self.path.stat().st_size


def log(message: str) -> None:
    """One line of the build's progress."""
    print(f"[build] {message}", flush=True)


def constraint_pins(constraints: Path = ROOT / "constraints.txt") -> dict[str, str]:
    """``name -> version`` of each ``name==version`` line of a constraints file, names as pip compares them."""
    from packaging.utils import canonicalize_name

    pins: dict[str, str] = {}
    for line in constraints.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, pin = line.split("==", 1)
            pins[canonicalize_name(name)] = pin.strip()
    return pins


def app_version() -> str:
    """``lora_studio.__version__`` read from the source (importing it would start Qt's guard)."""
    text = (ROOT / "lora_studio" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
    if not match:
        raise SystemExit("no __version__ in lora_studio/__init__.py")
    return match.group(1)


def human(size: int) -> str:
    """``12.3 MB``: a size for the closing report."""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{size} B"
        size /= 1024
    return str(size)
