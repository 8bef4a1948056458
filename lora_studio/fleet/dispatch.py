"""Sending queued runs, in order, to the first free target that fits; each start claimed on the share.

A target is free while it runs fewer jobs than its ``max_jobs`` (runs whose folders say they are
going, plus queued runs being started there right now); it fits when its GPUs, as far as they
are known, can take the run (:func:`~.fit.misfit`). :func:`dispatch` is one pass over the queue:
for each waiting run in order, the first free fitting target; the start is claimed
(:mod:`.claim`) and the entry read again under the claim, so that two desks passing over the
same queue at the same moment never start one run twice (a started run keeps its claim for good,
so even a desk that read an old ``queue.json`` cannot take it). A start that fails is recorded in
the run's ``queue.json`` (``failed``, with the reasons) and is not tried again by itself; one
refused only because the target became busy meanwhile stays queued. With a
:class:`~.ahead.Preparer`, the pass also preflights the run that goes next to each target whose
job ends soon (:mod:`.ahead`).

Blocking and free of Qt: the app runs a pass in a worker; a script can run it in a loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from trainer.rundir import ACTIVE_STATES

from ..targets.model import LocalTarget, Target
from ..targets.runinfo import read_run_info
from ..targets.runs import RunSummary, list_runs
from .ahead import Preparer, ends_soon
from .claim import STALE_CLAIM_S, Claim, ClaimHeld, break_stale, holding, release, try_claim
from .fit import GpuNote, Needs, misfit
from .queue import FAILED, QUEUED, STARTED, QueueEntry, list_queue, read_entry, write_entry
from .waits import Wait

GOING = (*ACTIVE_STATES, "launched", "queued")  # queued: held by a Ray cluster until a node is free


@dataclass
class TargetLoad:
    """What a target does now: the runs going there and the queued runs on their way to it."""

    name: str
    target: Target | None            # None: runs were seen on it, but this desk has no target of that name
    max_jobs: int
    running: list[RunSummary] = field(default_factory=list)
    next: list[str] = field(default_factory=list)   # queued runs being (or about to be) started there
    refused: bool = False            # its preflight said busy in this pass (another desk got there first)

    @property
    def free(self) -> bool:
        """Whether it can take one more run."""
        return not self.refused and len(self.running) + len(self.next) < self.max_jobs

    def busy_text(self) -> str:
        """``runs cats, dogs; next: fox``: why it is busy."""
        parts = []
        if self.running:
            parts.append("runs " + ", ".join(r.name for r in self.running))
        if self.next:
            parts.append("next: " + ", ".join(self.next))
        if self.refused and not parts:
            parts.append("another desk started a run there just now")
        return "; ".join(parts) or "no free slot"

    def copy(self) -> "TargetLoad":
        """A copy whose lists can change without changing this one."""
        return replace(self, running=list(self.running), next=list(self.next))


@dataclass(frozen=True)
class StartResult:
    """What a start callable reports: started, refused because the target is busy, or failed with reasons."""

    started: bool
    busy: bool = False
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """What one pass did with one queued run."""

    run_dir: Path
    target: str
    kind: str            # started | busy | failed
    message: str = ""


Starter = Callable[[QueueEntry, Target], StartResult]


def target_loads(targets: list[Target], runs: list[RunSummary], queue: list[QueueEntry]) -> dict[str, TargetLoad]:
    """Every target of the desk (and every target name runs were seen on) with what it does now."""
    loads = {t.name: TargetLoad(t.name, t, max(1, int(t.max_jobs))) for t in targets}
    going = set()
    for run in runs:
        if run.state in GOING and run.target:
            going.add(run.path)
            for name in run.targets:  # a multi-node run takes a slot on each of its nodes
                loads.setdefault(name, TargetLoad(name, None, 0)).running.append(run)
    for entry in queue:
        claim = entry.claim
        # A run being started on a target, or checked ahead for it (.ahead), is that target's next run.
        if claim is not None and claim.purpose in ("start", "prepare") and entry.run_dir not in going:
            for name in entry.needs.targets if entry.needs.together else (claim.target,):
                if name in loads:
                    loads[name].next.append(entry.name)
    return loads


def placement(needs: Needs, queued_by: str, targets: list[Target], loads: Mapping[str, TargetLoad],
              notes: Mapping[str, GpuNote], desk: str) -> tuple[Target | None, list[Wait]]:
    """The first free target that fits, or None and why each target it may use cannot take it now.

    A run over several nodes (``needs.together``) needs all of its targets free and fitting at
    once; it is placed on the first, which hosts the rendezvous.
    """
    by_name = {t.name: t for t in targets}
    if needs.together:
        return _placement_together(needs, by_name, loads, notes)
    waits = []
    for name in needs.targets or [t.name for t in targets]:
        target = by_name.get(name)
        if target is None:
            waits.append(Wait(name, "not on this desk", "not set up on this desk"))
        elif isinstance(target, LocalTarget) and queued_by != desk:
            # Each desk's own computer takes only the runs queued on that desk.
            if needs.targets:  # it asked for "This computer" of the desk that queued it: say so
                waits.append(Wait(queued_by, "its own computer", f"{name}: only that desk starts it"))
        elif (why := misfit(needs, notes.get(target.name))) is not None:
            waits.append(Wait(name, *why))
        elif not loads[name].free:
            waits.append(Wait(name, "busy", f"busy: {loads[name].busy_text()}"))
        else:
            return target, []
    return None, waits


def _placement_together(needs: Needs, by_name: Mapping[str, Target], loads: Mapping[str, TargetLoad],
                        notes: Mapping[str, GpuNote]) -> tuple[Target | None, list[Wait]]:
    waits = []
    for name in needs.targets:
        if name not in by_name:
            waits.append(Wait(name, "not on this desk", "not set up on this desk"))
        elif (why := misfit(needs, notes.get(name))) is not None:
            waits.append(Wait(name, *why))
        elif not loads[name].free:
            waits.append(Wait(name, "busy", f"busy: {loads[name].busy_text()}"))
    return (None, waits) if waits or not needs.targets else (by_name[needs.targets[0]], [])


def hold_slots(loads: Mapping[str, TargetLoad], entry: QueueEntry, target: Target) -> None:
    """``entry`` goes to ``target`` now: it takes a slot there (on each of its nodes, for a run over several)."""
    for name in entry.needs.targets if entry.needs.together else (target.name,):
        if name in loads:
            loads[name].next.append(entry.name)


def keep_free_nodes(loads: Mapping[str, TargetLoad], entry: QueueEntry, waits: list[Wait]) -> None:
    """A run over several nodes that waits only for busy ones keeps those of its nodes that are free.

    Else later runs would take them as they free up, one by one, and it might never find all of
    them free at once. It keeps none while it waits for something that may never come (a node not
    set up on this desk, a GPU too small): the others stay usable.
    """
    if entry.needs.together and waits and all(w.short == "busy" for w in waits):
        for name in entry.needs.targets:
            if name in loads and loads[name].free:
                loads[name].next.append(entry.name)


def plan(queue: list[QueueEntry], targets: list[Target], loads: Mapping[str, TargetLoad],
         notes: Mapping[str, GpuNote], desk: str) -> tuple[list[tuple[QueueEntry, Target | None, list[Wait]]],
                                                           dict[str, TargetLoad]]:
    """Where each waiting run would go now, in order, and the loads after that (nothing is started)."""
    left = {name: load.copy() for name, load in loads.items()}
    placed = []
    for entry in queue:
        if not entry.waiting or entry.claim is not None:
            placed.append((entry, None, []))
            continue
        target, waits = placement(entry.needs, entry.queued_by, targets, left, notes, desk)
        if target is not None:
            hold_slots(left, entry, target)
        else:
            keep_free_nodes(left, entry, waits)
        placed.append((entry, target, waits))
    return placed, left


def dispatch(workspace: Path | str, targets: list[Target], start: Starter, desk: str,
             notes: Mapping[str, GpuNote] | None = None, *, stale_after_s: float = STALE_CLAIM_S,
             prepare: Preparer | None = None) -> list[Outcome]:
    """One pass: start every waiting run that has a free fitting target now, in queue order.

    ``start(entry, target)`` does the start (the app's preflight and launch; a test's stand-in)
    and is called with the run's claim held, for different targets from threads of their own.
    ``prepare`` (optional) preflights ahead the next run of each busy target whose job ends soon,
    in the same threads. Returns what was done, one outcome a start tried, in queue order.
    """
    notes = notes or {}
    queue = list_queue(workspace)
    stale = [e for e in queue if e.claim is not None and e.claim.age() >= stale_after_s]
    for entry in stale:
        recover_stale(entry.run_dir, desk, stale_after_s)
    if stale:
        queue = list_queue(workspace)
    if not any(entry.waiting and entry.claim is None for entry in queue):
        return []  # nothing to send: no need to read every run's state
    loads = target_loads(targets, list_runs(workspace), queue)
    claimed: list[tuple[QueueEntry, Target, Claim]] = []
    for entry in queue:
        if not entry.waiting or entry.claim is not None:
            continue
        target, waits = placement(entry.needs, entry.queued_by, targets, loads, notes, desk)
        if target is None:
            keep_free_nodes(loads, entry, waits)
            continue
        if prepare is not None and (mine := _checked_elsewhere(entry, target, loads, prepare)) is not None:
            # Checked ahead for a target whose job is ending: it goes there in a moment, and this free
            # target takes the next run (checked ahead for it, as a rule) instead of a whole new preflight.
            hold_slots(loads, entry, mine)
            continue
        claim = try_claim(entry.run_dir, desk, "start", target.name)
        if claim is None:
            continue  # another desk is starting (or changing) it
        current = read_entry(entry.run_dir)  # as it is now: started, cancelled or moved meanwhile?
        if current is None or current.state != QUEUED:
            release(entry.run_dir, claim)
            continue
        hold_slots(loads, current, target)
        claimed.append((current, target, claim))
    ahead: list[tuple[QueueEntry, Target]] = []
    if prepare is not None:
        prepare.starts.forget_except({e.run_dir for e in queue if e.waiting})
        ahead = next_runs_of_busy_targets(queue, targets, loads, notes, desk, {c[0].run_dir for c in claimed})
        ahead = [(entry, target) for entry, target in ahead if prepare.starts.wanted(entry, target)]
    return _start_claimed(claimed, start, desk, ahead, prepare)


def _checked_elsewhere(entry: QueueEntry, target: Target, loads: Mapping[str, TargetLoad],
                       prepare: Preparer) -> Target | None:
    """The other target ``entry`` was checked ahead for, when that one is busy and its job ends soon."""
    mine = prepare.starts.checked_for(entry)
    if mine is None or mine.name == target.name or mine.name not in loads:
        return None
    load = loads[mine.name]
    return mine if not load.free and load.running and ends_soon(load.running) else None


def next_runs_of_busy_targets(queue: list[QueueEntry], targets: list[Target], loads: Mapping[str, TargetLoad],
                              notes: Mapping[str, GpuNote], desk: str, taken: set[Path]) -> list[tuple[QueueEntry, Target]]:
    """For each busy target whose job should end soon, the waiting run that goes there when it frees up.

    That is the first waiting run (in queue order, none of ``taken``) whose placement, with that
    target's ending job gone, is that target; a run that a free target takes first is no one's next.
    """
    soon = {name for name, load in loads.items()
            if load.target is not None and not load.free and load.running and ends_soon(load.running)}
    if not soon:
        return []
    freed = {}
    for name, load in loads.items():
        freed[name] = load.copy()
        if name in soon:
            freed[name].running = freed[name].running[1:]
    found = []
    for entry in queue:
        if not soon:
            break
        if not entry.waiting or entry.claim is not None or entry.run_dir in taken:
            continue
        target, waits = placement(entry.needs, entry.queued_by, targets, freed, notes, desk)
        if target is None:
            keep_free_nodes(freed, entry, waits)
            continue
        hold_slots(freed, entry, target)  # it holds that slot: the next run looks further
        if target.name in soon and not entry.needs.together:  # a run over several nodes is checked at its start
            soon.discard(target.name)
            found.append((entry, target))
    return found


def _start_claimed(claimed: list[tuple[QueueEntry, Target, Claim]], start: Starter, desk: str,
                   ahead: list[tuple[QueueEntry, Target]], prepare: Preparer | None) -> list[Outcome]:
    """Start the claimed runs: one target's in queue order, different targets' at the same time; then
    each target's preflight ahead (``ahead``), in the same thread as its starts.

    A start's preflight takes seconds (a login, the trainer's doctor, the config check): made one
    after another, the second target of a pass would stand idle through the first one's.
    """
    by_target: dict[str, list[int]] = {}
    for index, (_, target, _) in enumerate(claimed):
        by_target.setdefault(target.name, []).append(index)
    prepares: dict[str, tuple[QueueEntry, Target]] = {target.name: (entry, target) for entry, target in ahead}
    for name in prepares:
        by_target.setdefault(name, [])
    outcomes: list[Outcome | None] = [None] * len(claimed)

    def on_target(name: str, indices: list[int]) -> None:
        start_on_target(indices)
        if prepare is not None and name in prepares:
            entry, target = prepares[name]
            prepare.starts.prepare(entry, target, desk, prepare.check)

    def start_on_target(indices: list[int]) -> None:
        busy = False
        for index in indices:
            entry, target, claim = claimed[index]
            if busy:  # another desk filled the target meanwhile: the rest wait in the queue
                release(entry.run_dir, claim)
                continue
            keep = False
            try:
                outcome = _start_one(entry, target, start, desk)
                busy = outcome.kind == "busy"
                # A started run keeps its claim: the record of who started it, and a lock no desk can take again.
                keep = outcome.kind == "started"
            finally:
                if not keep:
                    release(entry.run_dir, claim)
            outcomes[index] = outcome

    if len(by_target) <= 1:
        for name, indices in by_target.items():
            on_target(name, indices)
    else:
        with ThreadPoolExecutor(max_workers=len(by_target), thread_name_prefix="fleet-start") as pool:
            for finished in [pool.submit(on_target, name, indices) for name, indices in by_target.items()]:
                finished.result()
    return [outcome for outcome in outcomes if outcome is not None]


def _start_one(entry: QueueEntry, target: Target, start: Starter, desk: str) -> Outcome:
    try:
        result = start(entry, target)
    except Exception as exc:  # noqa: BLE001 - recorded in the run's queue entry, never raised into the pass
        result = StartResult(False, problems=(str(exc) or exc.__class__.__name__,))
    now = time.time()
    if result.started:
        write_entry(replace(entry, state=STARTED, error=None, started={"target": target.name, "time": now, "desk": desk}))
        return Outcome(entry.run_dir, target.name, "started")
    if result.busy:
        return Outcome(entry.run_dir, target.name, "busy", f"{target.name} became busy; it stays queued")
    problems = list(result.problems) or ["the start failed without saying why"]
    message = f"could not start on {target.name}: {problems[0]}"
    write_entry(replace(entry, state=FAILED, error={"message": message, "problems": problems, "target": target.name,
                                                    "time": now, "desk": desk}))
    return Outcome(entry.run_dir, target.name, "failed", message)


def recover_stale(run_dir: Path, desk: str, stale_after_s: float = STALE_CLAIM_S) -> bool:
    """Break a claim whose desk died holding it; a run that did start meanwhile is marked started.

    Returns whether a claim was broken. A run without a ``run.json`` newer than the claim did not
    start: it waits in the queue again, in its place.
    """
    broken = break_stale(run_dir, stale_after_s=stale_after_s)
    if broken is None:
        return False
    info = read_run_info(run_dir)
    if broken.purpose == "start" and info is not None and info.started_at >= broken.time - 1.0:
        try:
            with holding(run_dir, desk, "recover"):
                entry = read_entry(run_dir)
                if entry is not None and entry.state == QUEUED:
                    write_entry(replace(entry, state=STARTED, started={"target": info.target_name,
                                                                       "time": info.started_at, "desk": broken.desk}))
        except (ClaimHeld, OSError):
            pass  # another desk is at it now, or the share hiccuped: the next pass looks again
    return True
