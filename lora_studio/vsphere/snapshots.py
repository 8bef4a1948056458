"""Snapshots of a VM: list (as a tree, with the current one marked), create, revert, delete.

A snapshot before a training run keeps a known-good VM (driver, CUDA, Python packages) to
go back to; "clone for an experiment" makes a linked clone from one (see :mod:`.vms`).
The VM's ``snapshot`` property is read through the property collector (:mod:`.tasks`):
it is unset on a VM without snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyVmomi import vim

from ..targets.vsphere import VCenterSession
from .errors import BadInput, choices
from .tasks import CancelCheck, Progress, call, properties, wait_task


@dataclass(frozen=True)
class SnapshotRow:
    """One snapshot of a VM."""

    name: str
    description: str
    created: str               # ISO 8601, as vCenter reports it
    power_state: str           # of the VM when it was taken
    current: bool              # the VM runs on top of this one ("You are here")
    parent: str                # the snapshot it was taken on top of; "" for a first one
    depth: int
    quiesced: bool


def _tree(session: VCenterSession, vm: vim.VirtualMachine) -> tuple[list[Any], Any]:
    info = properties(session, vm, ["snapshot"]).get("snapshot")
    if info is None:
        return [], None
    return list(info.rootSnapshotList or ()), info.currentSnapshot


def _walk(nodes: list[Any], parent: str = "", depth: int = 0):
    for node in nodes:
        yield node, parent, depth
        yield from _walk(list(node.childSnapshotList or ()), node.name, depth + 1)


def list_snapshots(session: VCenterSession, vm: vim.VirtualMachine) -> list[SnapshotRow]:
    """The VM's snapshots, parents before children."""
    roots, current = _tree(session, vm)
    return [SnapshotRow(node.name, node.description or "", node.createTime.isoformat() if node.createTime else "",
                        str(node.state), current is not None and node.snapshot == current, parent, depth,
                        bool(node.quiesced))
            for node, parent, depth in _walk(roots)]


def find_snapshot(session: VCenterSession, vm: vim.VirtualMachine, name: str,
                  option: str = "--snapshot") -> vim.vm.Snapshot:
    """The snapshot of ``vm`` called ``name``; :class:`BadInput` listing the VM's snapshots otherwise."""
    roots, _ = _tree(session, vm)
    found = [node.snapshot for node, _, _ in _walk(roots) if node.name == name]
    if not found:
        vm_name = properties(session, vm, ["name"]).get("name", "the VM")
        names = [node.name for node, _, _ in _walk(roots)]
        raise BadInput(option, f"{vm_name} has no snapshot called {name!r}",
                       f"snapshots of {vm_name}: {choices(names)}" if names else f"{vm_name} has no snapshots yet")
    if len(found) > 1:
        raise BadInput(option, f"{len(found)} snapshots are called {name!r}", "rename one of them in vSphere Client")
    return found[0]


def create_snapshot(session: VCenterSession, vm: vim.VirtualMachine, name: str, description: str = "", *,
                    memory: bool = False, quiesce: bool = False, progress: Progress | None = None,
                    cancelled: CancelCheck | None = None) -> SnapshotRow:
    """Take a snapshot called ``name`` (unique on the VM, so revert and delete can name it)."""
    if not name.strip():
        raise BadInput("--name", "no snapshot name given", "name it, e.g. after the training run")
    if any(row.name == name for row in list_snapshots(session, vm)):
        raise BadInput("--name", f"the VM has a snapshot called {name!r} already", "choose another name")
    task = call(f"snapshot {name}", vm.CreateSnapshot_Task, name=name, description=description,
                memory=memory, quiesce=quiesce)
    wait_task(session, task, f"taking snapshot {name}", progress=progress, cancelled=cancelled)
    return next(row for row in list_snapshots(session, vm) if row.name == name)


def revert_snapshot(session: VCenterSession, vm: vim.VirtualMachine, name: str, *,
                    progress: Progress | None = None) -> SnapshotRow:
    """Go back to the snapshot ``name``: the VM's disks and settings as they were (changes since are lost)."""
    snapshot = find_snapshot(session, vm, name)
    wait_task(session, call(f"revert to {name}", snapshot.RevertToSnapshot_Task), f"reverting to {name}",
              progress=progress)
    return next(row for row in list_snapshots(session, vm) if row.name == name)


def delete_snapshot(session: VCenterSession, vm: vim.VirtualMachine, name: str, *, children: bool = False,
                    progress: Progress | None = None) -> None:
    """Delete the snapshot ``name`` (its data merges into its child or the VM); ``children`` too when asked."""
    snapshot = find_snapshot(session, vm, name)
    wait_task(session, call(f"delete snapshot {name}", snapshot.RemoveSnapshot_Task, removeChildren=children),
              f"deleting snapshot {name}", progress=progress)
