"""Whether a run is lost (its trainer is gone for good), and why: the heartbeat, the process, vCenter.

Pure: what the files, the process table, vCenter and the target said is handed in.

A run is lost when its trainer is gone while the run was going:

- vCenter reports its VM powered off (or suspended): nothing runs in it, however fresh the
  last heartbeat still is;
- its heartbeat is older than the run's threshold and its process is gone: this machine's
  process table says so, or its host is disconnected / not responding in vCenter, or its
  target, asked, has no such process (or cannot be reached at all);
- a desk found so before and marked it (``lost.json``; the summary then says ``lost``).

A stale heartbeat alone is not enough where the process can be asked: a trainer that still
runs (hung on a slow share, say) is left alone; starting a second one would make two writers of one folder.
A run over several nodes is asked as a whole (its nodes' torchrun): its worker's pid says nothing,
since torchrun starts new workers after a failure.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass

from trainer.rundir import ACTIVE_STATES

from ..targets.placement import placement_of
from ..targets.runs import RunSummary
from .vm_watch import VmState

WATCHED = (*ACTIVE_STATES, "lost")   # the states in which a run may turn out lost


@dataclass(frozen=True)
class Verdict:
    """Lost or not, and why in one sentence; ``home_down``: its own target cannot take it back now."""

    lost: bool
    reason: str
    home_down: bool = False


def judge(summary: RunSummary, stale_after_s: float, *, vm: VmState | None = None, mark: dict | None = None,
          process_alive: Callable[[], bool | None] | None = None, this_host: str | None = None) -> Verdict:
    """Whether ``summary``'s run is lost.

    ``vm``: what vCenter says of its VM (None: no VM, or not asked); ``mark``: its ``lost.json``
    when that speaks of the trainer now in status.json; ``process_alive()``: asks its target
    whether the trainer process still runs (True / False / None: the target cannot be reached),
    called only when the answer matters; without it, a stale run on another machine is not judged.
    """
    if summary.kind != "train" or summary.state not in WATCHED:
        return Verdict(False, f"it is {summary.state}")
    if vm is not None and not vm.error and vm.powered_down:
        return Verdict(True, vm.describe(), home_down=True)
    host_down = vm is not None and not vm.error and vm.host_down
    if mark is not None:
        return Verdict(True, str(mark.get("reason") or "a desk found its trainer gone"), home_down=host_down)
    # A multi-node run's status names rank 0's worker, which torchrun replaces after a failure: ask its nodes.
    local = summary.host == (this_host or socket.gethostname()) and placement_of(summary.info) is None
    age = summary.heartbeat_age_s
    if local and summary.state == "lost":  # this machine's process table: the pid is gone
        return Verdict(True, f"its trainer (pid {summary.pid} on {summary.host}) is gone", home_down=host_down)
    if age is None or age <= stale_after_s:
        return Verdict(False, f"its heartbeat is {age or 0:.0f} s old")
    silent = f"no heartbeat for {age:.0f} s"
    if host_down:
        return Verdict(True, f"{silent} and {vm.describe()}", home_down=True)
    if local:
        return Verdict(False, f"{silent}, but its process still runs here (pid {summary.pid})")
    if process_alive is None:
        return Verdict(False, f"{silent}; its target has not been asked yet")
    alive = process_alive()
    if alive:
        return Verdict(False, f"{silent}, but its trainer still runs on {summary.host}")
    where = f"its trainer is gone from {summary.host}" if alive is False else f"{summary.host or 'its target'} cannot be reached"
    return Verdict(True, f"{silent} and {where}")
