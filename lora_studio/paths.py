"""Where the app keeps its own files (settings, thumbnail cache, edit journals).

``LORA_STUDIO_HOME`` overrides the location: tests and the benchmark point it at a
temporary folder so that they never touch the user's real settings or caches.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QStandardPaths

from .frozen import bundle_root, trainer_python  # noqa: F401 - re-exported: paths is where callers look


def app_home() -> Path:
    """Folder for the app's state: the env override, else the OS's app-data folder."""
    override = os.environ.get("LORA_STUDIO_HOME")
    if override:
        path = Path(override)
    else:
        location = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.GenericDataLocation)
        path = Path(location or Path.home() / ".local" / "share") / "lora-studio"
    path.mkdir(parents=True, exist_ok=True)
    return path


def settings_path() -> Path:
    """The INI file with window layout, recent workspaces and preferences."""
    return app_home() / "settings.ini"


def thumbnail_cache_dir() -> Path:
    """Disk cache of reduced-size thumbnails (safe to delete at any time)."""
    path = app_home() / "thumbnails"
    path.mkdir(parents=True, exist_ok=True)
    return path


def journal_dir() -> Path:
    """Edit journals: kept on the local disk, not on the shared dataset folder."""
    path = app_home() / "journals"
    path.mkdir(parents=True, exist_ok=True)
    return path


def resources_dir() -> Path:
    """The top-level ``resources/`` folder (icons, themes, presets): checkout or bundle."""
    return bundle_root() / "resources"


def log_dir() -> Path:
    """Folder for the rotating log: the OS's per-user app-data folder, else ``app_home()``.

    ``LORA_STUDIO_HOME`` wins so that tests never write into the user's real log folder.
    """
    if not os.environ.get("LORA_STUDIO_HOME"):
        location = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppLocalDataLocation)
        if location:
            path = Path(location) / "logs"
            try:
                path.mkdir(parents=True, exist_ok=True)
                return path
            except OSError:
                pass  # a read-only or odd profile folder: fall back to app_home()
    path = app_home() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path
