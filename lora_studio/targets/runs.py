"""Re-attach: every run under a workspace with its state, and how a run ended, read from files only.

No connection is needed to watch: status.json and run.json are on the shared storage.
A run whose heartbeat is stale is ``lost`` (the trainer died or its machine did; resume
it); on this machine the process is checked too, so a stale but live run (a long hang)
stays in its state. Once the desk has seen a heartbeat move on, its age is by the desk's
clock alone, however the two machines' clocks differ (:mod:`.heartbeats`). A detached
trainer has no parent to report its exit code to, so :func:`exit_code_of` reads it from the
run folder.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path

from trainer.rundir import (ACTIVE_STATES, LOG_FILE, RUN_FILE, STALE_AFTER_S, STATUS_FILE, local_pid_alive,
                            read_status)

from .heartbeats import SEEN
from .ray_client import RayJob
from .placement import placement_of, run_targets
from .lost_mark import lost_mark
from .runinfo import RunInfo, read_run_info

# Folders that never hold runs and can be huge (datasets, caches): not descended into.
_SKIP = {"checkpoints", "samples", "tb", ".lora_cache", "__pycache__", ".git", "node_modules"}
MAX_DEPTH = 8
LOG_TAIL_CHARS = 64_000  # of a run's console output, kept for error messages
# The trainer's exit codes (train and label alike), and EXIT_LOST: it ended without saying how.
EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_LOST = 0, 1, 2, -1


@dataclass(frozen=True)
class RunSummary:
    """One run folder as the Runs list shows it."""

    path: Path
    name: str
    state: str                 # a status.json state, or lost / launched / not_started
    step: int
    total_steps: int | None
    heartbeat_age_s: float | None
    target: str
    host: str
    pid: int | None
    started_at: float | None
    error: dict | None
    info: RunInfo | None
    kind: str = "train"        # "label": an auto-caption job; "queued": in the queue, its run not started yet
    ray_job: RayJob | None = None  # a Ray run's job as Ray last reported it (see ray_state.with_ray_states)
    note: str = ""             # a run in the queue: its place and what it waits for (the Fleet view's words)
    # The trainer machine's clock minus this desk's, once the desk has seen its heartbeat move on
    # (then heartbeat_age_s is by this desk's clock alone: see heartbeats.py).
    clock_offset_s: float | None = None

    @property
    def targets(self) -> tuple[str, ...]:
        """Every target the run occupies: the nodes of a multi-node run, else its one target."""
        return run_targets(self.info) or ((self.target,) if self.target else ())

    @property
    def resumable(self) -> bool:
        """Whether Resume (or automatic recovery) can continue it from a checkpoint."""
        return self.kind == "train" and self.state in ("stopped", "failed", "lost")


def summarize_run(run_dir: Path | str, now: float | None = None, stale_after_s: float = STALE_AFTER_S) -> RunSummary:
    """The state of one run folder, from its files."""
    run_dir = Path(run_dir)
    now = time.time() if now is None else now
    status = read_status(run_dir)
    info = read_run_info(run_dir)
    summary = _summarize(run_dir, status, info, now, stale_after_s)
    # Label jobs say so in status.json; a folder without one is in no resumable state anyway.
    return replace(summary, kind=str((status or {}).get("kind") or "train"))


def _summarize(run_dir: Path, status: dict | None, info: RunInfo | None, now: float,
               stale_after_s: float) -> RunSummary:
    target = info.target_name if info else ""
    host = (status or {}).get("host") or (info.host if info else "")
    pid = (status or {}).get("pid") or (info.pid if info else None)
    if status is None:
        # Launched, but the trainer has not written its status yet (or died before it could:
        # a config error goes to train.log).
        young = info is not None and now - info.started_at < stale_after_s
        state = "launched" if young else "not_started"
        return RunSummary(run_dir, run_dir.name, state, 0, None, None, target, host, pid,
                          info.started_at if info else None, None, info)
    state = status.get("state", "unknown")
    heartbeat = status.get("heartbeat")
    if info is not None and now - info.started_at < stale_after_s and _written_before_launch(status, info):
        # Started again (a resume or a recovery): the new trainer has not written its status
        # yet, so the old one's state says nothing.
        return RunSummary(run_dir, run_dir.name, "launched", int(status.get("step") or 0), status.get("total_steps"),
                          None, target, host, info.pid, info.started_at, None, info)
    age = now - heartbeat if isinstance(heartbeat, (int, float)) else None
    offset = None
    # On this machine the process table answers at once; elsewhere only a stale heartbeat can
    # tell that the trainer (or its machine) is gone. Not for a run over several nodes: its
    # status names rank 0's worker, which torchrun replaces after a failure.
    local = host == socket.gethostname() and isinstance(pid, int) and placement_of(info) is None
    if not local and (beat := SEEN.look(run_dir, heartbeat, now)) is not None:
        age, offset = beat.age_s, beat.clock_offset_s  # by this desk's clock alone
    if state in ACTIVE_STATES:
        stale = age is None or age > stale_after_s
        if (local and not local_pid_alive(pid)) or (not local and stale):
            state = "lost"
        elif not local and lost_mark(run_dir, status) is not None:  # a desk found its VM powered off (lost_mark.py)
            state = "lost"
    return RunSummary(run_dir, run_dir.name, state, int(status.get("step") or 0), status.get("total_steps"),
                      age, target, host, pid, status.get("started_at") or (info.started_at if info else None),
                      status.get("error"), info, clock_offset_s=offset)


def _written_before_launch(status: dict, info: RunInfo) -> bool:
    """Whether ``status`` is still the one of the trainer that ran before ``info``'s launch.

    Told by the heartbeat the launch saw, so the two machines' clocks do not matter. A run.json
    of an app that did not record it is judged as before: launched after the heartbeat, by
    the desk's clock, and another pid.
    """
    heartbeat = status.get("heartbeat")
    if info.heartbeat_before is not None:
        return heartbeat == info.heartbeat_before
    return isinstance(heartbeat, (int, float)) and info.started_at > heartbeat and status.get("pid") != info.pid


def find_run_dirs(workspace: Path | str, max_depth: int = MAX_DEPTH,
                  markers: tuple[str, ...] = (STATUS_FILE, RUN_FILE)) -> list[Path]:
    """Folders under ``workspace`` holding one of ``markers`` (a status.json or run.json; not descending into runs)."""
    root = Path(workspace)
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        depth = len(Path(folder).relative_to(root).parts)
        if any(marker in files for marker in markers):
            found.append(Path(folder))
            dirs[:] = []
            continue
        dirs[:] = [d for d in dirs if d not in _SKIP and not d.startswith(".")] if depth < max_depth else []
    return sorted(found)


def list_runs(workspace: Path | str, now: float | None = None) -> list[RunSummary]:
    """Every run under ``workspace``, newest first."""
    runs = [summarize_run(d, now) for d in find_run_dirs(workspace)]
    return sorted(runs, key=lambda r: r.started_at or 0, reverse=True)


def active_runs_on(workspace: Path | str, target_name: str) -> list[RunSummary]:
    """Runs of ``target_name`` that are still going (for the one-job-per-target rule)."""
    return [r for r in list_runs(workspace) if target_name in r.targets and r.state in (*ACTIVE_STATES, "launched")]


def read_log_tail(run_dir: Path | str, limit: int = LOG_TAIL_CHARS) -> str:
    """The end of the run's ``train.log`` (its console output), '' when there is none."""
    try:
        with open(Path(run_dir) / LOG_FILE, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - limit))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def exit_code_of(status: dict | None, log: str) -> int:
    """The trainer's exit code as its run folder tells it, once it has ended (there is no process to ask)."""
    state = (status or {}).get("state")
    if state in ("completed", "stopped"):
        return EXIT_OK
    if state == "failed":
        return EXIT_FAILED  # status.json has the error and its hint
    if status is None:  # ended before its first status: bad input (exit 2) prints `error:` lines
        return EXIT_INVALID if any(line.startswith("error: ") for line in log.splitlines()) else EXIT_FAILED
    return EXIT_LOST  # gone in the middle of the job
