"""Stopping a run in stages: the STOP file, then SIGTERM, then a forced kill.

The STOP file works through shared storage with no connection at all, and lets the
trainer checkpoint and exit cleanly; signals are the fallback when the trainer does not
react (hung on I/O, or STOP not visible on its side). Each stage is reported to
``on_stage`` so the UI can show where it is. :func:`stop_now` skips the STOP file's wait
(the rest of a long step) when the user would rather lose that step.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from trainer.fsutil import atomic_write_text
from trainer.rundir import FINAL_STATES, STATUS_FILE, STOP_FILE, read_status

from .control import ProcessControl
from .errors import TargetError

STAGES = ("stop_file", "terminate", "kill")
# Stop now: how long a SIGTERM gets before the kill. The trainer takes SIGTERM as "stop after
# this step" too, so a long wait here would be the very wait the user chose to skip; a few
# seconds still let a trainer between two steps exit cleanly.
STOP_NOW_KILL_AFTER_S = 5.0


@dataclass(frozen=True)
class StopResult:
    """How a stop went: the last stage used, whether the trainer is gone, its final state."""

    stage: str              # stop_file | terminate | kill
    stopped: bool
    state: str | None       # status.json's state afterwards (stopped, completed, failed, ...)
    message: str


def request_stop(local_run_dir: Path | str) -> Path:
    """Create the run's STOP file (the trainer checkpoints and exits at its next step)."""
    path = Path(local_run_dir) / STOP_FILE
    atomic_write_text(path, f"stop requested by LoRA Studio at {time.time():.0f}\n")
    return path


def _gone(control: ProcessControl | None, run_dir: Path) -> bool:
    status = read_status(run_dir) or {}
    if control is None:
        return status.get("state") in FINAL_STATES
    try:
        return not control.is_alive()
    except TargetError:
        # No channel right now: a final state in status.json is the next best evidence.
        return status.get("state") in FINAL_STATES


def _mark_stopped(run_dir: Path, stage: str) -> None:
    """Say in status.json that a trainer ended by a signal was stopped on purpose.

    A killed trainer cannot write its final state: its status would stay "training" and the
    run would soon count as lost, which automatic recovery answers by starting it again.
    Only called once the process is known to be gone, so nothing writes the file any more.
    """
    status = read_status(run_dir)
    if status is None or status.get("state") in FINAL_STATES:
        return
    status.update(state="stopped", stopped_by=stage, stopped_at=time.time())
    try:
        atomic_write_text(run_dir / STATUS_FILE, json.dumps(status, indent=1) + "\n")
    except OSError:
        pass  # read-only share: the run shows as lost, which resume handles the same way


def _wait(control: ProcessControl | None, run_dir: Path, seconds: float, poll_s: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        if _gone(control, run_dir):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))


def stop_run(local_run_dir: Path | str, control: ProcessControl | None, *, grace_s: float = 60.0,
             kill_after_s: float = 60.0, poll_s: float = 1.0, use_stop_file: bool = True,
             on_stage: Callable[[str], None] | None = None) -> StopResult:
    """Stop a run: STOP file, SIGTERM after ``grace_s``, SIGKILL ``kill_after_s`` later.

    ``control`` may be None (no connection to the target): then only the STOP file is used
    and the final state in status.json tells whether it worked. Blocking: call it from a
    worker thread. ``use_stop_file=False`` starts with SIGTERM.
    """
    run_dir = Path(local_run_dir)
    report = on_stage or (lambda stage: None)

    def result(stage: str, stopped: bool, message: str) -> StopResult:
        return StopResult(stage, stopped, (read_status(run_dir) or {}).get("state"), message)

    stage = "stop_file"
    if use_stop_file:
        report(stage)
        request_stop(run_dir)
        if _wait(control, run_dir, grace_s, poll_s):
            return result(stage, True, "the trainer saved a checkpoint and stopped")
        if control is None:
            return result(stage, False, f"the trainer has not reacted to the STOP file within {grace_s:.0f} s and "
                                        "there is no connection to signal it; check the target")
    elif control is None:
        raise TargetError("no connection to the target to signal the trainer", "use the STOP file, or connect first")
    # The signal stages: (stage, signal, how long to wait for the trainer to go, what success means).
    signals = (("terminate", "TERM", kill_after_s, "the trainer stopped after SIGTERM"),
               ("kill", "KILL", 15.0, "the trainer was killed; resume continues from its last checkpoint"))
    for stage, name, wait_s, stopped in signals:
        report(stage)
        try:
            control.signal(name)
        except TargetError as exc:
            return result(stage, False, f"SIG{name} failed: {exc}")
        if _wait(control, run_dir, wait_s, poll_s):
            _mark_stopped(run_dir, stage)
            return result(stage, True, stopped)
    return result(stage, False, "the trainer survived SIGKILL (stuck in the kernel?); check the machine")


def stop_now(local_run_dir: Path | str, control: ProcessControl, *, kill_after_s: float = STOP_NOW_KILL_AFTER_S,
             poll_s: float = 1.0, on_stage: Callable[[str], None] | None = None) -> StopResult:
    """Stop without waiting for the current step: SIGTERM, then SIGKILL ``kill_after_s`` later.

    The step in progress is lost; a resume continues from the last complete checkpoint.
    Needs ``control`` (a way to signal the trainer). A trainer already gone is not signalled
    (its pid may belong to another process by now): the result then has stage ``stop_file``,
    meaning no signal was sent. Blocking: call it from a worker thread.
    """
    run_dir = Path(local_run_dir)
    if _gone(control, run_dir):
        return StopResult("stop_file", True, (read_status(run_dir) or {}).get("state"),
                          "the trainer had already stopped")
    return stop_run(run_dir, control, kill_after_s=kill_after_s, poll_s=poll_s, use_stop_file=False,
                    on_stage=on_stage)
