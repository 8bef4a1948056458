"""Noticing that an open dataset's files may have changed on disk: a file-system watcher for
local disks, and a poll as the safety net for network shares (SMB/NFS edits made by other
machines are often not notified). It only says "look now"; what a change means is the
session's (:mod:`.session`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QFileSystemWatcher, QObject, QTimer

DEBOUNCE_MS = 300  # one look for the burst of notices that one save makes


class DiskWatch(QObject):
    """Calls ``look`` every ``poll_ms``, and soon after the disk reports a change to one of
    ``paths()``; with ``poll_ms`` 0 it watches nothing (tests drive the looks themselves)."""

    def __init__(self, paths: Callable[[], list[str]], look: Callable[[], None], parent: QObject,
                 poll_ms: int) -> None:
        super().__init__(parent)
        self._paths = paths
        self.poll_timer = QTimer(self, interval=poll_ms)
        self.poll_timer.timeout.connect(look)
        self.watcher = QFileSystemWatcher(self)
        self._debounce = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._debounce.timeout.connect(look)
        if poll_ms > 0:
            self.poll_timer.start()
            self._watch()
            self.watcher.fileChanged.connect(self._changed)
            self.watcher.directoryChanged.connect(self._changed)

    def _watch(self) -> None:
        paths = self._paths()
        missing = [p for p in paths if p not in self.watcher.files() + self.watcher.directories() and Path(p).exists()]
        if missing:
            self.watcher.addPaths(missing)

    def _changed(self, _path: str) -> None:
        # An atomic save replaces the file (a new inode), which drops it from the watch list.
        self._watch()
        self._debounce.start()

    def stop(self) -> None:
        """Stop looking: no more polls, and the paths are no longer watched."""
        self.poll_timer.stop()
        self._debounce.stop()
        if self.watcher.files() or self.watcher.directories():
            self.watcher.removePaths(self.watcher.files() + self.watcher.directories())
