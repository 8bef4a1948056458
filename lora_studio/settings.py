"""The app's preferences and window state, stored in an INI file under the app's home."""

from __future__ import annotations

import hashlib
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

from .paths import settings_path

MAX_RECENT = 8


def _key(path: Path) -> str:
    # Python's hash() changes between runs; a digest is stable.
    return hashlib.sha1(str(path).encode("utf-8")).hexdigest()[:16]


class Settings:
    """Typed access to the few things the app remembers between sessions."""

    def __init__(self) -> None:
        self.q = QSettings(str(settings_path()), QSettings.Format.IniFormat)

    def recent_workspaces(self) -> list[str]:
        """Most recent first; folders that no longer exist are dropped."""
        value = self.q.value("recent/workspaces", [])
        items = [value] if isinstance(value, str) else list(value or [])
        return [p for p in items if Path(p).is_dir()]

    def add_recent_workspace(self, path: Path) -> None:
        """Put ``path`` first in the recent list."""
        items = [str(path)] + [p for p in self.recent_workspaces() if p != str(path)]
        self.q.setValue("recent/workspaces", items[:MAX_RECENT])

    def last_dataset(self, workspace: Path) -> str | None:
        """The dataset folder last opened in ``workspace``."""
        value = self.q.value(f"lastDataset/{_key(workspace)}")
        return str(value) if value else None

    def set_last_dataset(self, workspace: Path, dataset: Path) -> None:
        """Remember the open dataset of ``workspace``."""
        self.q.setValue(f"lastDataset/{_key(workspace)}", str(dataset))

    def window_state(self) -> tuple[QByteArray | None, QByteArray | None]:
        """Saved geometry and dock layout."""
        return self.q.value("window/geometry"), self.q.value("window/state")

    def save_window_state(self, geometry: QByteArray, state: QByteArray) -> None:
        """Remember geometry and dock layout."""
        self.q.setValue("window/geometry", geometry)
        self.q.setValue("window/state", state)

    @property
    def theme(self) -> str:
        """'system', 'light' or 'dark'."""
        value = str(self.q.value("view/theme", "system"))
        return value if value in ("system", "light", "dark") else "system"

    @theme.setter
    def theme(self, value: str) -> None:
        self.q.setValue("view/theme", value)

    @property
    def grid_mode(self) -> int:
        """0 icon, 1 table."""
        try:
            return int(self.q.value("view/gridMode", 0))
        except (TypeError, ValueError):
            return 0

    @grid_mode.setter
    def grid_mode(self, value: int) -> None:
        self.q.setValue("view/gridMode", int(value))

    @property
    def thumb_size(self) -> int | None:
        """The grid's thumbnail size chosen with Ctrl+wheel (None: the default)."""
        try:
            value = self.q.value("view/thumbSize")
            return int(value) if value is not None else None
        except (TypeError, ValueError):
            return None

    @thumb_size.setter
    def thumb_size(self, value: int) -> None:
        self.q.setValue("view/thumbSize", int(value))

    @property
    def copy_folder(self) -> str | None:
        """The folder a finished LoRA was last copied to (ComfyUI's models/loras, as a rule)."""
        value = self.q.value("runs/copyFolder")
        return str(value) if value else None

    @copy_folder.setter
    def copy_folder(self, value: str) -> None:
        self.q.setValue("runs/copyFolder", value)

    def sync(self) -> None:
        """Write to disk now."""
        self.q.sync()
