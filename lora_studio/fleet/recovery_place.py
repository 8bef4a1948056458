"""Where a lost run starts again: its own target when it can take it back, else the first free target that fits.

Pure: the targets, their loads and GPUs, and what vCenter said are handed in. The order:

1. its own target, unless that is known down (its VM powered off, its host not responding), busy,
   or another desk's own computer (a run lost on "This computer" of desk A is no run of desk B's computer);
2. then, by the queue's rules (:func:`.dispatch.placement`: free, fits the run's GPU needs, first
   in the desk's order), every other target that sees the run folder through its path mappings.
   A desk's own computer is never one of them: a run sent to a VM stays on the VMs.

Each is tried in turn by the recovery pass: the first whose preflight passes takes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from trainer.rundir import CONFIG_FILE

from ..targets.errors import TargetConfigError
from ..targets.model import LocalTarget, Target
from ..targets.runs import RunSummary
from .dispatch import TargetLoad, placement
from .fit import GpuNote, Needs, needs_for
from .lost import Verdict
from .queue import read_entry
from .vm_watch import VmKey, VmState, target_vm
from .waits import Wait


def sees(target: Target, run_dir: Path) -> bool:
    """Whether ``target``'s path mappings reach the run folder (a target without mappings sees the desktop's paths)."""
    try:
        target.mapper().to_target(str(run_dir), what="the run folder")
    except TargetConfigError:
        return False
    return True


def needs_of(run_dir: Path, notes: Mapping[str, GpuNote]) -> Needs:
    """What the run asks of a target: what it was queued with, else what its config says (GPU or CPU)."""
    entry = read_entry(run_dir)
    if entry is not None:
        return entry.needs
    try:
        values = yaml.safe_load((run_dir / CONFIG_FILE).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        values = {}
    return needs_for(values if isinstance(values, dict) else {}, None, [], notes)


def home_of(summary: RunSummary, targets: list[Target]) -> Target | None:
    """The target the run was lost on, as this desk has it (None when this desk has no target of that name)."""
    name = summary.info.target_name if summary.info else summary.target
    return next((t for t in targets if t.name == name), None)


def places(summary: RunSummary, verdict: Verdict, targets: list[Target], loads: Mapping[str, TargetLoad],
           notes: Mapping[str, GpuNote], needs: Needs, desk: str, this_host: str,
           vms: Mapping[VmKey, VmState] | None = None) -> tuple[list[Target], list[Wait]]:
    """The targets to try, best first, and why each other one cannot take the run now."""
    vms = vms or {}
    home = home_of(summary, targets)
    order: list[Target] = []
    waits: list[Wait] = []
    if home is not None:
        load = loads.get(home.name)
        if isinstance(home, LocalTarget) and (summary.info is None or summary.info.host != this_host):
            waits.append(Wait(home.name, "another desk's computer", f"the run was on {summary.host}, not on this desk"))
        elif verdict.home_down:
            waits.append(Wait(home.name, "down", verdict.reason))
        elif load is not None and not load.free:
            waits.append(Wait(home.name, "busy", f"busy: {load.busy_text()}"))
        else:
            order.append(home)
    others = []
    for target in targets:
        state = vms.get(target_vm(target)) if target_vm(target) else None
        if target is home or isinstance(target, LocalTarget):
            continue
        if not sees(target, summary.path):
            waits.append(Wait(target.name, "cannot see the run", f"its path mappings do not reach {summary.path}"))
        elif state is not None and not state.error and not state.usable:
            waits.append(Wait(target.name, "down", state.describe()))
        else:
            others.append(target)
    while others:
        target, why = placement(needs, desk, others, loads, notes, desk)
        if target is None:
            waits += [w for w in why if w.short != "not on this desk"]  # a target ruled out above, or the home
            break
        order.append(target)
        others.remove(target)
    return order, waits
