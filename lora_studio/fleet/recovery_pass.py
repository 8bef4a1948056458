"""Automatic recovery: a pass over the runs that finds the lost ones and starts each again, once, somewhere.

For every run with automatic recovery on (``recovery.json``) that is going or lost:

1. judge it (:func:`.lost.judge`): its heartbeat, its process, what vCenter says of its VM;
2. take its recovery claim (``recovery.claim``, an atomic create, :mod:`.claim`), so that of two
   desks that both found it lost exactly one restarts it; read ``run.json`` and the attempts again
   under the claim: a run another desk restarted meanwhile is left alone;
3. mark it lost (``lost.json``: every desk then reads it so, even while its last heartbeat is
   fresh), write ``restart-config.yaml`` (the paths as this desk sees them), and try the places of
   :func:`.recovery_place.places` in order: the first whose preflight passes takes it;
4. record the attempt in ``events.jsonl`` before the start: ``{"kind": "recovery", "from": A,
   "to": B, "reason": ..., "attempt": n, "step": s}`` (``to`` null when no target could take it).

The trainer resumes by itself from the newest complete checkpoint of the run folder. A run over
several nodes starts again on all of them at once (once none of its torchruns is left; a worker
lost while they run is torchrun's to restart). A run waits, without an attempt, while every place
is busy; a failed attempt is tried again after :data:`RETRY_AFTER_S`; after ``max_attempts``
attempts the run is left to the user.

Blocking and free of Qt: the app runs a pass in a worker every few seconds; a script can loop it.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trainer.checkpoint import list_checkpoints
from trainer.rundir import read_status

from ..targets.api import TargetContext, preflight, start
from ..targets.run_control import is_running
from ..targets.errors import TargetError
from ..targets.lost_mark import lost_mark, mark_lost
from ..targets.model import Target
from ..targets.multinode import relaunch_nodes
from ..targets.placement import Placement, placement_of
from ..targets.preflight import ERROR
from ..targets.runinfo import read_run_info
from ..targets.runs import RunSummary, list_runs, summarize_run
from .claim import RECOVERY_CLAIM_FILE, break_stale, read_claim, release, try_claim
from .dispatch import target_loads
from .fit import load_gpu_notes, note_gpus
from .lost import WATCHED, Verdict, judge
from .queue import list_queue
from .recovery_place import home_of, needs_of, places
from .recovery_settings import RECOVERY_EVENT, RecoverySettings, load_settings, record_event, recovery_events
from .restart_config import restart_config
from .vm_watch import VmKey, VmState, target_vm, vm_of, vm_states
from .waits import waits_text

RETRY_AFTER_S = 60.0  # a failed attempt (no target passed its preflight) is tried again after this long
STARTED, WAITS, FAILED, HELD, GAVE_UP = "started", "waits", "failed", "held", "gave_up"
Probe = Callable[[Path, TargetContext], bool]


@dataclass(frozen=True)
class RecoveryOutcome:
    """What a pass did with one lost run: ``started`` on ``target``, ``waits`` for a free one,
    ``failed`` (no target could take it), ``held`` (another desk is at it, or was), ``gave_up``."""

    run_dir: Path
    kind: str
    source: str            # the target it was lost on
    target: str = ""       # where it started again
    reason: str = ""       # why it counts as lost
    message: str = ""      # what it waits for, or why it failed


@dataclass
class _Pass:
    """What one pass knows, shared by the runs it looks at."""

    workspace: Path
    ctx: TargetContext
    desk: str
    targets: list[Target]
    runs: list[RunSummary]
    vms: dict[VmKey, VmState]
    notes_path: Path | str | None
    ask: bool
    this_host: str
    probe: Probe
    retry_after_s: float


def recovery_pass(workspace: Path | str, ctx: TargetContext, desk: str, *, runs: list[RunSummary] | None = None,
                  notes_path: Path | str | None = None, ask: bool = True, this_host: str | None = None,
                  probe: Probe = is_running, retry_after_s: float = RETRY_AFTER_S) -> list[RecoveryOutcome]:
    """One pass over ``workspace``'s runs (``runs``: a listing just made); starts each lost one again.

    ``ask``: ask vCenter about the runs' VMs and remote targets about stale runs' processes this
    pass (a few logins; the app asks every few passes). Without asking, only what the files and
    this machine's process table show is judged. Returns one outcome per lost run.
    """
    runs = list_runs(workspace) if runs is None else runs
    chosen = [(run, settings) for run in runs if run.kind == "train" and run.state in WATCHED
              and (settings := load_settings(run.path)).enabled]
    if not chosen:
        return []
    targets = list(ctx.settings.targets)
    wanted = {key for run, _ in chosen if (key := vm_of(run.info, targets)) is not None and (ask or run.state == "lost")}
    state = _Pass(Path(workspace), ctx, desk, targets, runs, vm_states(ctx, wanted) if wanted else {}, notes_path, ask,
                  this_host or socket.gethostname(), probe, retry_after_s)
    outcomes = [_recover_if_lost(run.path, settings, state) for run, settings in chosen]
    return [outcome for outcome in outcomes if outcome is not None]


def _recover_if_lost(run_dir: Path, settings: RecoverySettings, state: _Pass) -> RecoveryOutcome | None:
    """Judge one run; when it is lost, claim it and start it again."""
    summary = summarize_run(run_dir, stale_after_s=settings.stale_after_s)
    status = read_status(run_dir) or {}
    vm_key = vm_of(summary.info, state.targets)

    def alive() -> bool | None:
        try:
            return state.probe(run_dir, state.ctx)
        except (TargetError, OSError):
            return None  # unreachable: a trainer that cannot be reached cannot be writing its heartbeat either

    verdict = judge(summary, settings.stale_after_s, vm=state.vms.get(vm_key) if vm_key else None,
                    mark=lost_mark(run_dir, status), process_alive=alive if state.ask else None,
                    this_host=state.this_host)
    if not verdict.lost:
        return None
    source = _source(summary)
    made = recovery_events(run_dir)
    if len(made) >= settings.max_attempts:
        return RecoveryOutcome(run_dir, GAVE_UP, source, reason=verdict.reason,
                               message=f"{len(made)} recoveries tried already; resume it by hand")
    if made and made[-1].get("to") is None and time.time() - float(made[-1].get("time") or 0) < state.retry_after_s:
        return RecoveryOutcome(run_dir, WAITS, source, reason=verdict.reason,
                               message=f"the last attempt failed; the next one within {state.retry_after_s:.0f} s")
    claim = try_claim(run_dir, state.desk, "recover", file=RECOVERY_CLAIM_FILE)
    if claim is None:
        break_stale(run_dir, file=RECOVERY_CLAIM_FILE)  # its desk died holding it: the next pass can take it
        holder = read_claim(run_dir, file=RECOVERY_CLAIM_FILE)
        return RecoveryOutcome(run_dir, HELD, source, reason=verdict.reason,
                               message=f"{holder.desk if holder else 'another desk'} is starting it again")
    try:
        info = read_run_info(run_dir)
        if (info.started_at if info else None) != (summary.info.started_at if summary.info else None) \
                or len(recovery_events(run_dir)) != len(made):
            return RecoveryOutcome(run_dir, HELD, source, reason=verdict.reason,
                                   message="another desk started it again just now")
        if status.get("pid") is not None:
            mark_lost(run_dir, status, verdict.reason, state.desk)
        return _restart(summary, verdict, len(made) + 1, state)
    finally:
        release(run_dir, claim, file=RECOVERY_CLAIM_FILE)


def _restart(summary: RunSummary, verdict: Verdict, attempt: int, state: _Pass) -> RecoveryOutcome:
    """Start the lost run again on the first place that passes its preflight (the caller holds its claim)."""
    placement = placement_of(summary.info)
    if placement is not None:
        return _restart_on_nodes(summary, placement, verdict, attempt, state)
    run_dir, targets = summary.path, state.targets
    home = home_of(summary, targets)
    source = _source(summary)
    # Which other VMs are up: asked only now (the run may move), and only in passes that ask (a waiting
    # run is looked at every few seconds); a VM not asked about is tried, and its preflight says.
    other_vms = {key for t in targets if (key := target_vm(t)) is not None and key not in state.vms} if state.ask else ()
    vms = {**state.vms, **vm_states(state.ctx, other_vms)} if other_vms else state.vms
    notes = load_gpu_notes(state.notes_path)
    loads = target_loads(targets, state.runs, list_queue(state.workspace))
    order, waits = places(summary, verdict, targets, loads, notes, needs_of(run_dir, notes), state.desk,
                          state.this_host, vms)
    if not order:
        return RecoveryOutcome(run_dir, WAITS, source, reason=verdict.reason, message=waits_text(waits))
    try:
        config = restart_config(run_dir, home, state.desk)
    except TargetError as exc:
        return _failed(run_dir, attempt, source, verdict, [f"its config.yaml cannot be read: {exc.message}"])
    step = _checkpoint_step(run_dir)
    problems = []
    for target in order:
        prepared, report = preflight(target, config, state.ctx, workspace=state.workspace)
        if prepared is None or not report.ok:
            errors = [c.message for c in report.checks if c.status == ERROR] or ["its preflight failed"]
            problems.append(f"{target.name}: {errors[0]}")
            continue
        if state.notes_path is not None:
            note_gpus(state.notes_path, target.name, report.doctor)
        # Before the start: the plot marks the move, even if the start itself fails.
        record_event(run_dir, RECOVERY_EVENT, attempt=attempt, reason=verdict.reason, step=step,
                     target=target.name, **{"from": source, "to": target.name})
        try:
            start(target, prepared, state.ctx)
        except TargetError as exc:
            record_event(run_dir, "warning", message=f"could not start the run again on {target.name}: {exc.message}")
            return RecoveryOutcome(run_dir, FAILED, source, target.name, verdict.reason, exc.message)
        return RecoveryOutcome(run_dir, STARTED, source, target.name, verdict.reason)
    return _failed(run_dir, attempt, source, verdict, problems)


def _restart_on_nodes(summary: RunSummary, placement: Placement, verdict: Verdict, attempt: int,
                      state: _Pass) -> RecoveryOutcome:
    """A run over several nodes: on all of them again, with the processes each had, once they are all free."""
    run_dir, source = summary.path, _source(summary)
    nodes = {t.name: t for t in state.targets if t.name in placement.targets}
    missing = [name for name in placement.targets if name not in nodes]
    if missing:
        return _failed(run_dir, attempt, source, verdict, [f"{', '.join(missing)}: not set up on this desk"])
    # A node's VM that vCenter reports off may come back (vSphere HA): the run waits for it, without an attempt.
    keys = {key for t in nodes.values() if (key := target_vm(t)) is not None and key not in state.vms}
    vms = {**state.vms, **vm_states(state.ctx, keys)} if keys and state.ask else state.vms
    down = nodes_down(list(nodes.values()), vms)
    if down:
        return RecoveryOutcome(run_dir, WAITS, source, reason=verdict.reason, message="; ".join(down))
    loads = target_loads(state.targets, state.runs, list_queue(state.workspace))
    busy = [loads[name] for name in placement.targets if not loads[name].free]
    if busy:
        return RecoveryOutcome(run_dir, WAITS, source, reason=verdict.reason,
                               message="; ".join(f"{load.name} (busy: {load.busy_text()})" for load in busy))
    try:
        config = restart_config(run_dir, home_of(summary, state.targets), state.desk)
        step = _checkpoint_step(run_dir)
        outcome = relaunch_nodes(placement, config, state.ctx, workspace=state.workspace)
    except TargetError as exc:
        return _failed(run_dir, attempt, source, verdict, [exc.message])
    if not outcome.started:  # one preflight for all nodes: its errors name the node
        return _failed(run_dir, attempt, source, verdict,
                       [c.message for c in outcome.report.checks if c.status == ERROR] or ["its preflight failed"])
    # After the start here (the launch preflights and starts every node in one go); the trainer marks the resume.
    record_event(run_dir, RECOVERY_EVENT, attempt=attempt, reason=verdict.reason, step=step, target=source,
                 **{"from": source, "to": source})
    return RecoveryOutcome(run_dir, STARTED, source, source, verdict.reason)


def nodes_down(nodes: list[Target], vms: dict[VmKey, VmState]) -> list[str]:
    """What vCenter says of each node whose VM is powered off or suspended (a node that is no VM, or was
    not asked about, is left to the launch's preflight)."""
    states = [vms.get(key) for node in nodes if (key := target_vm(node)) is not None]
    return [state.describe() for state in states if state is not None and not state.error and state.powered_down]


def _source(summary: RunSummary) -> str:
    """Where the run was lost: its target, or its nodes (``gpu-a + gpu-b``)."""
    return " + ".join(summary.targets)


def _failed(run_dir: Path, attempt: int, source: str, verdict: Verdict, problems: list[str]) -> RecoveryOutcome:
    message = "no target could take it: " + "; ".join(problems)
    record_event(run_dir, RECOVERY_EVENT, attempt=attempt, reason=verdict.reason, error=message,
                 **{"from": source, "to": None})
    return RecoveryOutcome(run_dir, FAILED, source, reason=verdict.reason, message=message)


def _checkpoint_step(run_dir: Path) -> int:
    """The step of the newest complete checkpoint (where the run continues), 0 without one."""
    complete = list_checkpoints(run_dir)
    try:
        return int(complete[-1].name.rsplit("-", 1)[-1]) if complete else 0
    except ValueError:
        return 0
