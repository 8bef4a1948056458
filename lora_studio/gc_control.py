"""Python's garbage collector and the UI thread.

Two problems, both seen in this app:

- **Wrong thread.** Python's cyclic collector runs in whichever thread happens to allocate
  when a threshold is crossed, often a worker. Collecting a cycle that holds a Qt object
  there destroys the object off its thread ("QBasicTimer: Timers cannot be started from
  another thread", or worse). :class:`UiThreadCollector` turns automatic collection off
  while the window lives and collects from a timer on the UI thread instead.
- **Pauses.** A 10,000-image dataset keeps some 100,000 Python objects alive while it is
  open; every full collection walks all of them (~100 ms per pause, measured by
  ``bench/grid_scale.py`` during a big save). :func:`settle_long_lived_objects` takes
  them out of later collections.
"""

from __future__ import annotations

import gc
import threading

from PySide6.QtCore import QObject, QTimer

COLLECT_EVERY_MS = 500


def settle_long_lived_objects() -> bool:
    """Collect once, then exempt everything alive now from later collections.

    Call on the UI thread once a dataset is open. Frozen objects are still freed by
    reference counting; unfreezing first lets the previous dataset's cycles be collected.
    Returns False, freezing nothing, when the collection did not run (another thread was
    collecting: ``gc.collect`` then returns at once, and freezing would keep whatever
    garbage exists forever); call again later.
    """
    gc.unfreeze()
    if not collect_everything_here():
        return False
    gc.freeze()
    return True


def collect_everything_here() -> bool:
    """A full collection on this thread; True if it really ran (False: another thread is collecting)."""
    this_thread, finished = threading.get_ident(), []

    def note(phase: str, info: dict) -> None:
        if phase == "stop" and info["generation"] == 2 and threading.get_ident() == this_thread:
            finished.append(True)

    gc.callbacks.append(note)
    try:
        gc.collect()
    finally:
        gc.callbacks.remove(note)
    return bool(finished)


class UiThreadCollector(QObject):
    """While it runs, cyclic garbage is collected only on the UI thread, from a timer.

    Generations are collected when their counts pass the interpreter's own thresholds, as
    the automatic collector would, just never in a worker. Several may run (one per
    window); automatic collection comes back when the last one stops.
    """

    _running = 0

    def __init__(self, parent: QObject | None = None, interval_ms: int = COLLECT_EVERY_MS) -> None:
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.collect_due)
        self._timer.start(interval_ms)
        self._active = True
        UiThreadCollector._running += 1
        gc.disable()

    def collect_due(self) -> None:
        """Collect the oldest generation whose count passed its threshold (if any)."""
        counts, thresholds = gc.get_count(), gc.get_threshold()
        for generation in (2, 1, 0):
            if counts[generation] > thresholds[generation]:
                gc.collect(generation)
                return

    def stop(self) -> None:
        """Hand collection back to the interpreter (when no other collector runs)."""
        if not self._active:
            return
        self._active = False
        self._timer.stop()
        UiThreadCollector._running -= 1
        if UiThreadCollector._running == 0:
            gc.enable()
