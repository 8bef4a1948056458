"""Running plain functions in a thread pool with typed signals back to the UI thread.

Workers get plain data and return plain data; they never touch Qt models or widgets.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QThreadPool, Signal


class TaskSignals(QObject):
    """Signals of one task; emitted from the worker thread, delivered on the UI thread."""

    finished = Signal(object)
    failed = Signal(str)
    progress = Signal(int, int)


class CancelToken:
    """A flag a long task polls to stop early when the user cancels."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the task to stop."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """Whether cancel() was called."""
        return self._event.is_set()


class FunctionTask:
    """Runs ``fn(*args, progress=..., cancel=...)`` when ``with_progress``, else ``fn(*args)``.

    Expected failures are exceptions with a user-facing message; anything else is also
    turned into a message so that a worker can never take the app down with a traceback.
    """

    def __init__(self, fn: Callable[..., Any], *args: Any, with_progress: bool = False) -> None:
        self.fn = fn
        self.args = args
        self.with_progress = with_progress
        self.signals = TaskSignals()
        self.cancel_token = CancelToken()

    def run(self) -> None:
        """Run the function and report its outcome."""
        try:
            if self.with_progress:
                result = self.fn(*self.args, progress=self.signals.progress.emit, cancel=self.cancel_token)
            else:
                result = self.fn(*self.args)
        except Exception as exc:  # noqa: BLE001 - reported to the user, never raised into Qt
            self.signals.failed.emit(str(exc) or exc.__class__.__name__)
            return
        self.signals.finished.emit(result)


class TaskRunner(QObject):
    """Starts tasks on a pool and keeps them alive until they report back."""

    def __init__(self, pool: QThreadPool | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = pool or QThreadPool.globalInstance()
        self._running: set[FunctionTask] = set()

    def start(self, fn: Callable[..., Any], *args: Any, on_done: Callable[[Any], None] | None = None,
              on_error: Callable[[str], None] | None = None, with_progress: bool = False,
              on_progress: Callable[[int, int], None] | None = None, owner: QObject | None = None) -> FunctionTask:
        """Run ``fn(*args)`` in the pool; callbacks run on the UI thread.

        ``owner``: the widget the callbacks update. When it is gone by the time the work
        reports back (its window closed meanwhile), the callbacks are skipped.
        """
        task = FunctionTask(fn, *args, with_progress=with_progress)
        self._running.add(task)
        if owner is not None:
            on_done, on_error, on_progress = (_while_alive(owner, c) for c in (on_done, on_error, on_progress))

        def forget(*_: Any) -> None:
            self._running.discard(task)

        if on_done:
            task.signals.finished.connect(on_done)
        if on_error:
            task.signals.failed.connect(on_error)
        if on_progress:
            task.signals.progress.connect(on_progress)
        task.signals.finished.connect(forget)
        task.signals.failed.connect(forget)
        # The pool gets a plain callable: PySide wraps it in a runnable it owns, which avoids
        # Qt deleting a Python-owned QRunnable while its thread still runs.
        self.pool.start(task.run)
        return task

    def cancel_all(self) -> None:
        """Ask every running task to stop."""
        for task in list(self._running):
            task.cancel_token.cancel()

    @property
    def busy(self) -> bool:
        """Whether any task has not reported back yet."""
        return bool(self._running)


def _while_alive(owner: QObject, callback: Callable[..., None] | None) -> Callable[..., None] | None:
    """``callback``, skipped once ``owner``'s C++ object has been deleted."""
    if callback is None:
        return None

    def guarded(*args: Any) -> None:
        if shiboken6.isValid(owner):
            callback(*args)
    return guarded
