"""What the app calls: Start (now, or queued behind the runs waiting for the same targets), the
starter that launches queued runs, and the Fleet view's picture of targets and queue.

Blocking, free of Qt, plain data in and out: call these from a worker thread.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..targets.api import LaunchOutcome, TargetContext, launch, preflight
from ..targets.model import Target
from ..targets.multinode import NodesOptions, launch_nodes
from ..targets.preflight import ERROR, PreflightReport
from ..targets.prepare import PreparedRun, load_for_launch
from ..targets.ray_state import with_ray_states
from ..targets.runs import list_runs
from .ahead import Preparer, StartsAhead
from .dispatch import Outcome, StartResult, Starter, TargetLoad, dispatch, placement, plan, target_loads
from .fit import GpuNote, Needs, load_gpu_notes, note_gpus
from .queue import FAILED, QueueEntry, enqueue, list_queue, refuse_queued
from .waits import Wait, waits_text

Launch = Callable[..., LaunchOutcome]
LaunchNodes = Callable[..., LaunchOutcome]   # (targets, config, ctx, *, workspace, options): one run over several nodes
# The keyword arguments of a launch for a queued run's options on a target ({} = none).
LaunchOptions = Callable[[QueueEntry, Target], dict]


@dataclass
class StartDecision:
    """What Start did: launched on a free target (``outcome``), or queued (``queued`` and what it waits for)."""

    outcome: LaunchOutcome | None = None
    queued: QueueEntry | None = None
    waits_for: str = ""
    target: str = ""   # the target it was launched on


@dataclass(frozen=True)
class QueueRow:
    """One queued run as the Fleet view lists it."""

    entry: QueueEntry
    place: int           # 1 for the first waiting run; 0 for one that failed to start
    status: str          # what it waits for (briefly), who starts it now, or why its start failed
    waits: tuple[Wait, ...] = ()   # what it waits for, target by target


@dataclass(frozen=True)
class FleetSnapshot:
    """Targets with what they run and the queue, in order, as this desk sees them now."""

    loads: list[TargetLoad]
    gpus: dict[str, GpuNote]
    queue: list[QueueRow] = field(default_factory=list)
    taken_at: float = 0.0


def only_busy(report: PreflightReport) -> bool:
    """Whether the preflight's only error is that the target is busy (a run started there meanwhile)."""
    errors = [c for c in report.checks if c.status == ERROR]
    return bool(errors) and all(c.name == "busy" for c in errors)


def start_result(outcome: LaunchOutcome) -> StartResult:
    """A launch as the dispatcher records it: started, busy, or failed with one sentence a problem."""
    if outcome.started:
        return StartResult(True)
    if only_busy(outcome.report):
        return StartResult(False, busy=True)
    return StartResult(False, problems=tuple(f"{c.message} — {c.hint}" if c.hint else c.message
                                             for c in outcome.report.checks if c.status == ERROR))


def queued_launcher(ctx: TargetContext, workspace: Path | str, notes_path: Path | str | None = None,
                    launch_fn: Launch = launch, launch_options: LaunchOptions | None = None,
                    ahead: StartsAhead | None = None, launch_nodes_fn: LaunchNodes = launch_nodes) -> Starter:
    """The starter of queued runs: the preflight and launch Start does, from the run's queued config.

    ``launch_options(entry, target)`` turns the options the run was queued with into ``launch_fn``'s
    keyword arguments. The GPUs the target's doctor reports are noted in ``notes_path`` for the next
    fit check. A passing preflight that ``ahead`` holds for the run and target stands for the launch's
    own. A run over several nodes goes to ``launch_nodes_fn`` with all of them and its torchrun options.
    """
    def start(entry: QueueEntry, target: Target) -> StartResult:
        if entry.needs.together:
            return start_result(_launch_queued_nodes(entry, ctx, workspace, launch_nodes_fn))
        extra = launch_options(entry, target) if launch_options is not None else {}
        ready = ahead.take(entry, target) if ahead is not None else None
        if ready is not None:
            extra["checked"] = (ready.prepared, ready.report)
        outcome = launch_fn(target, entry.config, ctx, workspace=workspace, **extra)
        if notes_path is not None and ready is None:  # one made ahead saw the GPUs of the job then running
            note_gpus(notes_path, target.name, outcome.report.doctor)
        return start_result(outcome)
    return start


def nodes_options(options: NodesOptions) -> dict[str, Any]:
    """A queued run's options for a run over several nodes: its torchrun options as queue.json keeps them."""
    return {"nodes": asdict(options)}


def _launch_queued_nodes(entry: QueueEntry, ctx: TargetContext, workspace: Path | str,
                         launch_nodes_fn: LaunchNodes) -> LaunchOutcome:
    by_name = {t.name: t for t in ctx.settings.targets}
    nodes = [by_name[name] for name in entry.needs.targets if name in by_name]
    if len(nodes) != len(entry.needs.targets):
        report = PreflightReport(" + ".join(entry.needs.targets))
        missing = ", ".join(name for name in entry.needs.targets if name not in by_name)
        report.add("targets", ERROR, f"{missing} is no longer set up on this desk", "set it up again, or cancel the run")
        return LaunchOutcome(report)
    saved = entry.options.get("nodes") if isinstance(entry.options.get("nodes"), dict) else {}
    known = {f.name for f in fields(NodesOptions)}
    options = NodesOptions(**{k: int(v) for k, v in saved.items() if k in known and isinstance(v, (int, float))})
    return launch_nodes_fn(nodes, entry.config, ctx, workspace=workspace, options=options)


def ahead_preparer(ctx: TargetContext, workspace: Path | str, ahead: StartsAhead) -> Preparer:
    """The preflights ahead of a dispatch pass: Start's preflight, on a target that runs something now."""
    def check(entry: QueueEntry, target: Target) -> tuple[PreparedRun | None, PreflightReport]:
        return preflight(target, entry.config, ctx, workspace=workspace, allow_busy=True)
    return Preparer(ahead, check)


def start_or_queue(config_path: Path | str, targets: list[Target], ctx: TargetContext, workspace: Path | str,
                   needs: Needs, desk: str, *, notes_path: Path | str | None = None,
                   launch_fn: Launch = launch, options: dict | None = None) -> StartDecision:
    """Start the run on the first free target that fits, or queue it when there is none.

    Runs already queued for the same targets go first: a free target they can use is theirs, and
    the new run queues behind them. ``targets`` are the desk's; ``needs.targets`` those the run may
    use (() = any); ``options`` (the launch options chosen) are kept with a queued run. A launch
    refused only because the target became busy meanwhile queues the run.
    Raises TargetConfigError for a config that is not valid, QueueError when the run waits in the queue already.
    """
    refuse_queued(load_for_launch(config_path)["output_dir"])  # pressed Start again: it waits already
    queue = list_queue(workspace)
    notes = load_gpu_notes(notes_path)
    loads = target_loads(targets, list_runs(workspace), queue)
    _, left = plan(queue, targets, loads, notes, desk)
    target, waits = placement(needs, desk, targets, left, notes, desk)
    waits_for = waits_text(waits)
    if target is not None:
        outcome = launch_fn(target, config_path, ctx, workspace=workspace)
        if notes_path is not None:
            note_gpus(notes_path, target.name, outcome.report.doctor)
        if not only_busy(outcome.report):
            return StartDecision(outcome=outcome, target=target.name)
        waits_for = f"{target.name} (busy: another desk started a run there just now)"
    entry = enqueue(config_path, workspace, needs, desk, options=options)
    return StartDecision(queued=entry, waits_for=waits_for)


def fleet_snapshot(workspace: Path | str, targets: list[Target], desk: str,
                   notes_path: Path | str | None = None) -> FleetSnapshot:
    """The desk's targets with their GPUs and runs, and the queue with what each run waits for."""
    taken_at = time.time()  # before the files are read: what happened after this may be missing
    queue = list_queue(workspace)
    notes = load_gpu_notes(notes_path)
    loads = target_loads(targets, with_ray_states(list_runs(workspace)), queue)  # Ray's runs: queued there, or running
    placed, _ = plan(queue, targets, loads, notes, desk)
    rows, place = [], 0
    for entry, target, waits in placed:
        if entry.state == FAILED:
            rows.append(QueueRow(entry, 0, (entry.error or {}).get("message") or "its start failed"))
            continue
        place += 1
        if entry.claim is not None:
            claim = entry.claim
            doing = {"start": f"being started on {claim.target}",
                     "prepare": f"being checked for {claim.target}"}.get(claim.purpose, f"being changed ({claim.purpose})")
            status = f"{doing} by {claim.desk}"
        elif target is not None:
            status = f"starts on {target.name} at the next check"
        else:
            status = f"waits for {waits_text(waits)}"
        rows.append(QueueRow(entry, place, status, tuple(waits)))
    # Waiting runs first, in order; failed ones after them (they wait for the user, not a target).
    rows.sort(key=lambda r: (r.place == 0, r.place))
    return FleetSnapshot(list(loads.values()), notes, rows, taken_at)


def fleet_pass(workspace: Path | str, targets: list[Target], desk: str, starter: Starter | None,
               notes_path: Path | str | None = None, lock: AbstractContextManager | None = None,
               prepare: Preparer | None = None) -> tuple[list[Outcome], FleetSnapshot]:
    """What the app does every few seconds: send what can go now (unless ``starter`` is None), then look.

    ``lock`` (held around the sending) keeps this desk's own Start and its pass from filling one
    free slot twice. ``prepare``: preflights made ahead for busy targets' next runs (see :mod:`.ahead`).
    """
    outcomes: list[Outcome] = []
    if starter is not None:
        with lock or contextlib.nullcontext():
            outcomes = dispatch(workspace, targets, starter, desk, load_gpu_notes(notes_path), prepare=prepare)
    return outcomes, fleet_snapshot(workspace, targets, desk, notes_path)
