"""The Runs page's side of automatic recovery: after each listing, a recovery pass in a worker.

The pass (:func:`lora_studio.fleet.recovery_pass.recovery_pass`) reads the run folders, may log in
to vCenter and to targets, and starts trainers: never on the UI thread. One pass at a time; vCenter
and the targets are asked at most every :data:`ASK_EVERY_S` (what the files and this machine's
process table show is looked at after every listing).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from ..applog import log
from ..fleet.claim import this_desk
from ..fleet.lost import WATCHED
from ..fleet.recovery_pass import recovery_pass
from ..targets.api import TargetContext
from ..targets.runs import RunSummary
from ..targets_ui.store import gpu_notes_file
from ..workers.tasks import TaskRunner

ASK_EVERY_S = 15.0  # a VM powered off is seen within this long; a login to vCenter per look is cheap at that rate


class RecoveryWatch(QObject):
    """Starts lost runs again (those with automatic recovery on); ``passed(list[RecoveryOutcome])`` after a pass
    that found lost runs. What it did goes to the app's log too (the run's events say it for every desk)."""

    passed = Signal(object)   # list[RecoveryOutcome]

    def __init__(self, runner: TaskRunner, context: Callable[[], TargetContext], parent: QObject | None = None, *,
                 ask_every_s: float = ASK_EVERY_S, desk: str | None = None, notes_path: Path | None = None) -> None:
        super().__init__(parent)
        self.runner, self.context = runner, context
        self.ask_every_s = ask_every_s
        self.desk = desk or this_desk()
        self.notes_path = notes_path if notes_path is not None else gpu_notes_file()
        self._running = False
        self._asked_at = -float("inf")

    def check(self, workspace: Path | None, runs: list[RunSummary]) -> None:
        """After a listing: a pass over ``runs`` in a worker, unless one runs or no run could be lost."""
        if workspace is None or self._running or not any(r.kind == "train" and r.state in WATCHED for r in runs):
            return
        try:
            ctx = self.context()
        except Exception as exc:  # noqa: BLE001 - an unreadable targets file is logged, not raised
            log.warning("automatic recovery: the saved targets cannot be read: %s", exc)
            return
        ask = time.monotonic() - self._asked_at >= self.ask_every_s
        if ask:
            self._asked_at = time.monotonic()
        self._running = True
        work = functools.partial(recovery_pass, workspace, ctx, self.desk, runs=runs, notes_path=self.notes_path, ask=ask)
        self.runner.start(work, on_done=self._done, on_error=self._failed, owner=self)

    def _done(self, outcomes: list) -> None:
        self._running = False
        for outcome in outcomes:
            if outcome.kind != "waits":  # a run waiting for a free target is said at every pass: not logged
                log.info("automatic recovery of %s (%s): %s %s %s", outcome.run_dir, outcome.reason, outcome.kind,
                         outcome.target, outcome.message)
        if outcomes:
            self.passed.emit(outcomes)

    def _failed(self, message: str) -> None:
        self._running = False
        log.warning("automatic recovery could not look at the runs: %s", message)
