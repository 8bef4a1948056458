"""When typing in an editor reaches the session: after a short pause, and at least every so often while it goes on.

Every edit is journaled when it reaches the session, so this pace bounds what a crash can
lose (under a second of typing) without making an undo step of each key press.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer

COMMIT_MS = 300  # typing reaches the journal this long after a pause...
MAX_UNCOMMITTED_S = 0.8  # ...and at least this often during non-stop typing


class TypingPace(QObject):
    """Calls ``commit`` COMMIT_MS after the last key, or at once when typing has gone on MAX_UNCOMMITTED_S."""

    def __init__(self, commit: Callable[[], None], parent: QObject) -> None:
        super().__init__(parent)
        self._commit = commit
        self._since: float | None = None  # when the typing not yet committed began
        self._timer = QTimer(self, singleShot=True, interval=COMMIT_MS)
        self._timer.timeout.connect(commit)

    def typed(self) -> None:
        """A key was typed."""
        now = time.monotonic()
        if self._since is None:
            self._since = now
        if now - self._since >= MAX_UNCOMMITTED_S:
            self._commit()
        else:
            self._timer.start()

    def committed(self) -> None:
        """The editor sent what was typed (its ``commit`` calls this)."""
        self._since = None
        self._timer.stop()

    def cancel(self) -> None:
        """A change from elsewhere replaced the text: the pending commit is dropped."""
        self._timer.stop()
