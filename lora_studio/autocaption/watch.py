"""A job known by its run folder only: started on a target (or found again after a restart).

There is no local process to wait for, so :class:`RunFolderProcess` reports ``finished``
when ``status.json`` (on the shared storage, read here) reaches a final state. The target
is asked whether the trainer still runs only now and then, in a worker: often while the
job has written no status yet (bad input ends it within a second, with the reasons in
``train.log``), rarely afterwards (the trainer writes its final state itself; the check
catches a machine that died or a trainer killed by the kernel).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer

from trainer.rundir import FINAL_STATES, LOG_FILE, STATUS_FILE, is_stale, read_status

from ..targets.stop import request_stop
from ..workers.tasks import TaskRunner
from .launchers import OUTPUT_LIMIT, JobProcess

POLL_MS = 1000  # status.json is small: one read a second is cheap even on a share
PROBE_EARLY_MS = 1500  # how often the target is asked while the job has no status yet
PROBE_LATER_MS = 15_000  # ... and once it writes its status (and heartbeat)
EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_LOST = 0, 1, 2, -1


def read_log_tail(run_dir: Path, limit: int = OUTPUT_LIMIT) -> str:
    """The end of the job's ``train.log`` (its console output), '' when there is none."""
    path = run_dir / LOG_FILE
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - limit))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def exit_code_of(status: dict[str, Any] | None, log: str) -> int:
    """The trainer's exit code as the run folder tells it (there is no process to ask)."""
    state = (status or {}).get("state")
    if state in ("completed", "stopped"):
        return EXIT_OK
    if state == "failed":
        return EXIT_FAILED  # status.json has the error and its hint
    if status is None:  # ended before its first status: bad input (exit 2) prints `error:` lines
        return EXIT_INVALID if any(line.startswith("error: ") for line in log.splitlines()) else EXIT_FAILED
    return EXIT_LOST  # gone in the middle of the job


class RunFolderProcess(JobProcess):
    """Follows a job through its run folder; ``start_fn`` (optional) launches it first, in a worker.

    ``alive_fn`` says whether the trainer still runs (blocking, run in a worker; None: only
    a stale heartbeat tells). ``signal_fn(name)`` sends TERM or KILL (blocking, in a worker).
    """

    detached = True  # it outlives the app: closing the window does not end it

    def __init__(self, run_dir: Path, runner: TaskRunner, parent: QObject, *,
                 start_fn: Callable[[], Any] | None = None, alive_fn: Callable[[], bool] | None = None,
                 signal_fn: Callable[[str], None] | None = None, close_fn: Callable[[], None] | None = None,
                 poll_ms: int = POLL_MS) -> None:
        super().__init__(parent)
        self.run_dir, self.runner = run_dir, runner
        self.alive_fn, self.signal_fn, self.close_fn = alive_fn, signal_fn, close_fn
        self.output = ""
        self.launching = start_fn is not None
        self._done = False
        self._probing = False
        self._pending_signal = ""  # asked for while the launch was still under way
        self._last_probe = time.monotonic()
        self._observed_at = float("-inf")  # when the job's own poll last handed over status.json
        self._poll_ms = poll_ms
        self.timer = QTimer(self, interval=poll_ms)
        self.timer.timeout.connect(self.poll)
        if start_fn is not None:
            runner.start(start_fn, on_done=self._launched, on_error=self._launch_failed)
        else:
            self.timer.start()
            QTimer.singleShot(0, self, self.poll)  # a job that already ended says so at once

    # -- launch ----------------------------------------------------------------------------
    def _launched(self, _result: object) -> None:
        self.launching = False
        if self._done:
            return
        self.timer.start()
        if self._pending_signal:
            self._send(self._pending_signal)

    def _launch_failed(self, message: str) -> None:
        self.launching = False
        # LabelStartError's message is its problems, one a line; each becomes an `error:` line.
        lines = "".join(f"error: {part}\n" for part in message.splitlines() if part.strip())
        self._finish(EXIT_INVALID, lines)

    # -- following -------------------------------------------------------------------------
    def poll(self) -> None:
        """Read status.json (unless the job just handed it over); ask the target now and then."""
        if self._done or self.launching:
            return
        if time.monotonic() - self._observed_at < 1.5 * self._poll_ms / 1000:
            return  # the job reads status.json already: one read of it is enough
        self._check(read_status(self.run_dir))

    def observe(self, status: dict[str, Any] | None) -> None:
        """status.json as the job just read it (saves a second read of the same file)."""
        if self._done or self.launching:
            return
        self._observed_at = time.monotonic()
        self._check(status)

    def _check(self, status: dict[str, Any] | None) -> None:
        if status is not None and status.get("state") in FINAL_STATES:
            log = read_log_tail(self.run_dir)
            self._finish(exit_code_of(status, log), log)
            return
        if self.alive_fn is None:
            if status is not None and is_stale(status):
                self._ended_without_final_state()
            return
        due_ms = PROBE_EARLY_MS if status is None else PROBE_LATER_MS
        if not self._probing and (time.monotonic() - self._last_probe) * 1000 >= due_ms:
            self._probing = True
            self._last_probe = time.monotonic()
            self.runner.start(self.alive_fn, on_done=self._probed, on_error=self._probe_failed)

    def _probed(self, alive: object) -> None:
        self._probing = False
        if not alive and not self._done:
            self._ended_without_final_state()

    def _probe_failed(self, _message: str) -> None:
        self._probing = False  # no channel right now: the run folder still tells, try again later

    def _ended_without_final_state(self) -> None:
        status = read_status(self.run_dir)  # it may have written its final state just before exiting
        log = read_log_tail(self.run_dir)
        self._finish(exit_code_of(status, log), log)

    def _finish(self, code: int, output: str) -> None:
        if self._done:
            return
        self._done = True
        self.timer.stop()
        self.output = output[-OUTPUT_LIMIT:]
        if self.close_fn is not None:
            self.runner.start(self.close_fn)
        self.finished.emit(code, self.output)

    # -- JobProcess ------------------------------------------------------------------------
    def terminate(self) -> None:
        """Write STOP into the run folder; before the trainer has started its job, SIGTERM too."""
        if self._done:
            return
        try:
            request_stop(self.run_dir)
        except OSError:
            pass  # the signal below still reaches it
        if not (self.run_dir / STATUS_FILE).exists():
            # The trainer deletes a STOP it finds at its start (left from an earlier job).
            self._send("TERM")

    def kill(self) -> None:
        """SIGKILL through the targets backend (over the channel in run.json)."""
        if not self._done:
            self._send("KILL")

    def _send(self, name: str) -> None:
        if self.launching:
            self._pending_signal = name
            return
        if self.signal_fn is not None:
            self.runner.start(self.signal_fn, name, on_done=self._signalled, on_error=self._signal_failed)

    def _signalled(self, _result: object) -> None:
        self._last_probe = float("-inf")  # ask at the next poll whether it is gone

    def _signal_failed(self, message: str) -> None:
        self.output = (self.output + f"\nthe signal could not be sent: {message}")[-OUTPUT_LIMIT:]

    def is_running(self) -> bool:
        """Whether the job has not reported its end yet."""
        return not self._done

    def release(self) -> None:
        """Stop following; the job runs on (its run folder can be followed again later)."""
        self._done = True
        self.timer.stop()
        if self.close_fn is not None:
            self.runner.start(self.close_fn)
