"""Checking every image of a dataset in the background, reporting results in batches."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from ..storage.image_check import check_header_and_end
from .tasks import CancelToken


class ImageCheckSignals(QObject):
    """``batch``: ``{rel: ImageInfo}`` every ~100 ms; ``done``: when all were checked."""

    batch = Signal(dict)
    done = Signal()


class ImageCheckTask:
    """Runs ``check_header_and_end`` over ``(rel, path)`` pairs; cancellable between files.

    Start it with ``pool.start(task.run)`` (a callable, not a QRunnable: see tasks.py).
    """

    def __init__(self, items: list[tuple[str, Path]]) -> None:
        self.items = items
        self.signals = ImageCheckSignals()
        self.cancel_token = CancelToken()

    def run(self) -> None:
        """Check all images, emitting partial results so the grid fills in as it goes."""
        pending: dict = {}
        last = time.monotonic()
        for rel, path in self.items:
            if self.cancel_token.cancelled:
                return
            pending[rel] = check_header_and_end(path)
            if time.monotonic() - last > 0.1:
                self.signals.batch.emit(pending)
                pending = {}
                last = time.monotonic()
        if pending:
            self.signals.batch.emit(pending)
        self.signals.done.emit()
