"""The app's side of the queue: while a workspace is open, send its queued runs when a target frees up.

A timer polls the share every :data:`POLL_MS`; each tick runs one pass
(:func:`lora_studio.fleet.api.fleet_pass`: dispatch, then a fresh snapshot) in a worker of the
app's task runner, never on the UI thread: a start logs in over SSH or to vCenter. The Fleet view
shows the snapshots; its moves and cancels run in workers too, followed by a fresh look.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from ..fleet import FleetSnapshot, Outcome, QueueEntry, StartsAhead, ahead_preparer, fleet_pass, queued_launcher, this_desk
from ..targets.api import TargetContext, launch
from ..targets.model import Target, VSphereTarget
from ..targets.multinode import launch_nodes
from ..targets_ui.store import app_context, gpu_notes_file
from ..vsphere.run_snapshot import snapshot_before_run
from ..workers.tasks import TaskRunner

POLL_MS = 10_000  # a queued run waits for minutes-long runs: a look every 10 s is soon enough, and cheap
# While a run checked ahead waits for its target's job to end, that end is expected within minutes
# (fleet.ahead): look this often then, so the target stands idle for a moment, not for half a poll.
SOON_POLL_MS = 2_000


def launch_options(entry: QueueEntry, target: Target) -> dict:
    """``launch()``'s keyword arguments for the options a run was queued with (a VM snapshot first)."""
    if entry.options.get("snapshot_first") and isinstance(target, VSphereTarget):
        return {"before_start": snapshot_before_run}
    return {}


class FleetDispatcher(QObject):
    """Sends the open workspace's queued runs; ``snapshotReady(FleetSnapshot)`` after every look.

    ``launch_fn`` starts a run on a target (preflight and launch); Start and the queue both use it,
    and ``start_lock`` keeps them from filling one free slot twice. ``ahead`` keeps the preflights
    made ahead for the next runs of targets whose jobs end soon (None: none are made).
    """

    snapshotReady = Signal(object)   # FleetSnapshot
    dispatched = Signal(object)      # list[Outcome] of a pass that tried starts
    failed = Signal(str)             # a pass, a look or a queue change could not be done: why

    def __init__(self, runner: TaskRunner, context: Callable[[], TargetContext] = app_context,
                 parent: QObject | None = None, *, poll_ms: int = POLL_MS, desk: str | None = None) -> None:
        super().__init__(parent)
        self.runner, self.context = runner, context
        self.desk = desk or this_desk()
        self.notes_path = gpu_notes_file()
        self.launch_fn: Callable[..., Any] = launch
        self.launch_nodes_fn: Callable[..., Any] = launch_nodes   # the same for a run over several nodes
        self.ahead: StartsAhead | None = StartsAhead()
        self.poll_ms = poll_ms
        self.start_lock = threading.Lock()
        self.workspace: Path | None = None
        self.snapshot: FleetSnapshot | None = None
        self._sending = self._looking = self._look_again = False
        self.timer = QTimer(self, interval=poll_ms)
        self.timer.timeout.connect(self.poll)

    def set_workspace(self, workspace: Path | None) -> None:
        """Send and show the queue of ``workspace`` (None: stop)."""
        self.workspace = workspace
        self.snapshot = None
        if workspace is None:
            self.timer.stop()
            return
        if self.timer.interval() > 0:
            self.timer.start()
        self.poll()

    def _targets(self) -> tuple[TargetContext, list] | None:
        try:
            ctx = self.context()
        except Exception as exc:  # noqa: BLE001 - an unreadable targets file is said, not raised
            self.failed.emit(f"The saved targets cannot be read: {exc}")
            return None
        return ctx, list(ctx.settings.targets)

    def poll(self) -> None:
        """One pass in a worker: start what can start now, then look again (skipped while one runs)."""
        if self.workspace is None or self._sending:
            return
        found = self._targets()
        if found is None:
            return
        ctx, targets = found
        workspace = self.workspace
        starter = queued_launcher(ctx, workspace, self.notes_path, self.launch_fn, launch_options, self.ahead,
                                  self.launch_nodes_fn)
        prepare = ahead_preparer(ctx, workspace, self.ahead) if self.ahead is not None else None
        self._sending = True
        self.runner.start(fleet_pass, workspace, targets, self.desk, starter, self.notes_path, self.start_lock, prepare,
                          on_done=lambda result: self._passed(workspace, result),
                          on_error=lambda message: self._pass_failed(message), owner=self)

    def refresh(self) -> None:
        """Look at the queue and targets again now (in a worker), without starting anything."""
        if self.workspace is None:
            return
        if self._looking:
            self._look_again = True
            return
        found = self._targets()
        if found is None:
            return
        _, targets = found
        workspace = self.workspace
        self._looking = True
        self.runner.start(fleet_pass, workspace, targets, self.desk, None, self.notes_path,
                          on_done=lambda result: self._looked(workspace, result),
                          on_error=lambda message: self._look_failed(message), owner=self)

    def change(self, operation: Callable[..., Any], *args: Any) -> None:
        """Run a queue change (move, cancel, queue again) in a worker, then look again; errors to ``failed``."""
        self.runner.start(operation, *args, on_done=lambda _: self.refresh(),
                          on_error=lambda message: (self.failed.emit(message), self.refresh()), owner=self)

    # -- results ---------------------------------------------------------------------------
    def _passed(self, workspace: Path, result: tuple[list[Outcome], FleetSnapshot]) -> None:
        self._sending = False
        if self.poll_ms > 0:
            soon = self.ahead is not None and self.ahead.waiting()
            self.timer.setInterval(min(SOON_POLL_MS, self.poll_ms) if soon else self.poll_ms)
        outcomes, snapshot = result
        if workspace != self.workspace:
            return  # another workspace was opened meanwhile
        if outcomes:
            self.dispatched.emit(outcomes)
        self._show(snapshot)

    def _pass_failed(self, message: str) -> None:
        self._sending = False
        self.failed.emit(f"The queue could not be checked: {message}")

    def _looked(self, workspace: Path, result: tuple[list[Outcome], FleetSnapshot]) -> None:
        self._looking = False
        if workspace == self.workspace:
            self._show(result[1])
        if self._look_again:
            self._look_again = False
            self.refresh()

    def _look_failed(self, message: str) -> None:
        self._looking = False
        self.failed.emit(f"The queue could not be read: {message}")

    def _show(self, snapshot: FleetSnapshot) -> None:
        self.snapshot = snapshot
        self.snapshotReady.emit(snapshot)
