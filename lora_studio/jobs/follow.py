"""A trainer command known by its run folder: started in a worker, followed, stopped, let go.

Every job runs detached, on this computer as on a GPU VM, so there is no child process to
wait for and closing the app leaves the job running. :class:`RunFolderJob` reports
``finished`` when ``status.json`` (read here, on the shared storage) reaches a final state.
The target is asked whether the trainer still runs only now and then, in a worker: often
while the job has written no status yet (bad input ends it within a second, with the
reasons in ``train.log``), rarely afterwards (the trainer writes its final state itself;
the check catches a machine that died or a trainer killed by the kernel). With no way to
ask (no context, no ``run.json``, the target unreachable) a stale heartbeat tells instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from trainer.rundir import FINAL_STATES, STATUS_FILE, is_stale, read_status

from ..targets.api import TargetContext, start_job
from ..targets.run_control import RunProbe, stop_now
from ..targets.errors import TargetError, UntrustedHostKey
from ..targets.launch import PathsNotVisible, TrainerJob
from ..targets.model import Target
from ..targets.runinfo import RunInfo
from ..targets.runs import EXIT_INVALID, LOG_TAIL_CHARS, exit_code_of, read_log_tail
from ..targets.stop import request_stop
from ..workers.tasks import TaskRunner

POLL_MS = 1000  # status.json is small: one read a second is cheap even on a share
PROBE_EARLY_MS = 1500  # how often the target is asked while the job has no status yet
PROBE_LATER_MS = 15_000  # ... and once it writes its status (and heartbeat)


class StartFailed(Exception):
    """A job could not be started; ``problems`` are full sentences, each with what to do."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))  # one a line: a worker passes on the message only
        self.problems = problems


def start_problems(exc: TargetError, target: Target) -> list[str]:
    """What to tell the user about a start that failed, one sentence a line."""
    if isinstance(exc, PathsNotVisible):
        return exc.problems
    if isinstance(exc, UntrustedHostKey):
        return [f"{exc.message} — test {target.name} in the Targets panel and trust its host key there first"]
    return [f"{exc.message} — {exc.hint}" if exc.hint else exc.message]


def start_explained(target: Target, job: TrainerJob, ctx: TargetContext) -> RunInfo:
    """:func:`~lora_studio.targets.api.start_job` with the trainer checked first; failures as :class:`StartFailed`."""
    try:
        return start_job(target, job, ctx, check_trainer=True)
    except TargetError as exc:
        raise StartFailed(start_problems(exc, target)) from None


class RunFolderJob(QObject):
    """Follows a job through its run folder; ``finished(exit_code, output)`` once it has ended.

    ``exit_code`` is the trainer's, as the run folder tells it (:mod:`lora_studio.targets.runs`:
    ``EXIT_LOST`` when it ended without saying how); ``output`` is the end of its ``train.log``.
    ``start`` (optional) starts the job first, in a worker; ``context`` reaches the target
    (None: only the STOP file and the heartbeat work).
    """

    finished = Signal(int, str)

    def __init__(self, run_dir: Path, runner: TaskRunner, context: TargetContext | None,
                 parent: QObject | None = None, *, start: Callable[[], Any] | None = None,
                 poll_ms: int = POLL_MS) -> None:
        super().__init__(parent)
        self.run_dir, self.runner, self.context = Path(run_dir), runner, context
        self.probe = RunProbe(self.run_dir, context) if context is not None else None
        self.output = ""
        self.launching = start is not None
        self._done = False
        self._probing = False
        self._stop_pending = False  # asked for while the start was still under way
        self._last_probe = time.monotonic()
        self._observed_at = float("-inf")  # when the feature's own poll last handed over status.json
        self._poll_ms = poll_ms
        self.timer = QTimer(self, interval=poll_ms)
        self.timer.timeout.connect(self.poll)
        if start is not None:
            # owner: a job object gone before its start reports back (the app closed) hears nothing.
            runner.start(start, on_done=self._started, on_error=self._start_failed, owner=self)
        else:
            self.timer.start()
            QTimer.singleShot(0, self, self.poll)  # a job that already ended says so at once

    @classmethod
    def start_on(cls, target: Target, job: TrainerJob, context: TargetContext, runner: TaskRunner,
                 parent: QObject | None = None) -> "RunFolderJob":
        """Start ``job`` on ``target`` (in a worker; returns at once) and follow it.

        A job that cannot start (paths the target cannot see, no trainer there) ends with
        ``EXIT_INVALID`` and one ``error: <what to do>`` line a problem, as the trainer prints bad input.
        """
        return cls(job.run_dir, runner, context, parent, start=lambda: start_explained(target, job, context))

    # -- start -----------------------------------------------------------------------------
    def _started(self, _info: object) -> None:
        self.launching = False
        if self._done:
            return
        self.timer.start()
        if self._stop_pending:
            self.stop_now()

    def _start_failed(self, message: str) -> None:
        self.launching = False
        lines = "".join(f"error: {part}\n" for part in message.splitlines() if part.strip())
        self._finish(EXIT_INVALID, lines)

    # -- following -------------------------------------------------------------------------
    def poll(self) -> None:
        """Read status.json (unless the feature just handed it over); ask the target now and then."""
        if self._done or self.launching:
            return
        if time.monotonic() - self._observed_at < 1.5 * self._poll_ms / 1000:
            return  # the feature reads status.json already: one read of it is enough
        self._check(read_status(self.run_dir))

    def observe(self, status: dict[str, Any] | None) -> None:
        """status.json as the feature just read it (saves a second read of the same file)."""
        if self._done or self.launching:
            return
        self._observed_at = time.monotonic()
        self._check(status)

    def _check(self, status: dict[str, Any] | None) -> None:
        if status is not None and status.get("state") in FINAL_STATES:
            self._ended()
            return
        if self.probe is None:
            self._check_heartbeat(status)
            return
        due_ms = PROBE_EARLY_MS if status is None else PROBE_LATER_MS
        if not self._probing and (time.monotonic() - self._last_probe) * 1000 >= due_ms:
            self._probing = True
            self._last_probe = time.monotonic()
            self.runner.start(self.probe.alive, on_done=self._probed, on_error=self._probe_failed, owner=self)

    def _check_heartbeat(self, status: dict[str, Any] | None) -> None:
        if status is not None and is_stale(status):
            self._ended()

    def _probed(self, alive: object) -> None:
        self._probing = False
        if not alive and not self._done:
            self._ended()

    def _probe_failed(self, _message: str) -> None:
        self._probing = False  # no channel right now: the run folder still tells, try again later
        if not self._done:
            self._check_heartbeat(read_status(self.run_dir))

    def _ended(self) -> None:
        status = read_status(self.run_dir)  # it may have written its final state just before exiting
        log = read_log_tail(self.run_dir)
        self._finish(exit_code_of(status, log), log)

    def _finish(self, code: int, output: str) -> None:
        if self._done:
            return
        self._done = True
        self.timer.stop()
        self.output = output[-LOG_TAIL_CHARS:]
        self._close_probe()
        self.finished.emit(code, self.output)

    # -- stopping --------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the trainer to stop after its current step (the STOP file); one not started yet gets SIGTERM."""
        if self._done:
            return
        if (self.run_dir / STATUS_FILE).exists():
            try:
                request_stop(self.run_dir)
                return
            except OSError:
                pass  # the signals below still reach it
        # Before its first status the trainer has not begun its job, and it deletes a STOP
        # it finds at its start (one left from an earlier job): signal it instead.
        self.stop_now()

    def stop_now(self) -> None:
        """End the trainer at once: SIGTERM, then SIGKILL, over the channel in run.json (in a worker)."""
        if self._done:
            return
        if self.launching:
            self._stop_pending = True
            return
        if self.context is None:
            self._note("there is no connection to the target to signal the trainer")
            return
        self.runner.start(stop_now, self.run_dir, self.context, on_done=self._signalled,
                          on_error=lambda message: self._note(f"the trainer could not be signalled: {message}"),
                          owner=self)

    def _signalled(self, _result: object) -> None:
        self._last_probe = float("-inf")  # ask at the next poll whether it is gone

    def _note(self, text: str) -> None:
        self.output = (self.output + f"\n{text}")[-LOG_TAIL_CHARS:]

    # -- the end ---------------------------------------------------------------------------
    def is_running(self) -> bool:
        """Whether the job has not reported its end yet (and is still followed)."""
        return not self._done

    def release(self) -> None:
        """Stop following; the job runs on (its run folder can be followed again later)."""
        self._done = True
        self.timer.stop()
        self._close_probe()

    def _close_probe(self) -> None:
        if self.probe is not None:
            self.runner.start(self.probe.close)  # an SSH logout may take a moment: not on the UI thread
