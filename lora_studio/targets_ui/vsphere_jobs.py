"""What the vSphere tab's operations run in worker threads: log in, call :mod:`lora_studio.vsphere`,
log out. Plain data in, plain data out, no Qt (run them through :func:`.jobs.capture` to keep
a :class:`~lora_studio.vsphere.BadInput` typed for the form that shows it).

Each call is one vCenter session: the operations are minutes apart, and a session kept open
between them would expire on a real vCenter anyway.
"""

from __future__ import annotations

from dataclasses import replace
from ..targets import Check, TargetContext, TargetError, VCenter, VmRow, VSphereTarget
from ..targets.api import connect
from ..targets.preflight import SKIPPED
from ..vsphere import (ClusterView, Entry, MadeVm, NewVm, SnapshotRow, browse, clone_for_experiment,
                       cluster_view, connect_spbm, create_snapshot, create_vm, delete_snapshot, list_snapshots,
                       preflight_vm, revert_snapshot)
from ..vsphere.choices import NewVmChoices, new_vm_choices
from ..vsphere.cloudinit import read_public_key
from ..vsphere.datastore import datastores
from ..vsphere.inventory import find_vm
from ..vsphere.policies import policy_ids
from ..vsphere.tasks import CancelCheck, Progress


def load_choices(vcenter: VCenter, ctx: TargetContext) -> NewVmChoices:
    """The templates, places and policies the New VM dialog lists."""
    with connect(vcenter, ctx) as session:
        return new_vm_choices(session)


def make_vm(vcenter: VCenter, ctx: TargetContext, req: NewVm, key_file: str = "", *,
            progress: Progress | None = None, cancelled: CancelCheck | None = None) -> MadeVm:
    """Make the VM ``req`` asks for (``key_file``: the public key to authorize for the guest's SSH user)."""
    if key_file:
        req = replace(req, guest=replace(req.guest, ssh_key=read_public_key(key_file)))
    with connect(vcenter, ctx) as session:
        policy_id = policy_ids(connect_spbm(session)) if req.policy else None
        return create_vm(session, req, policy_id=policy_id, progress=progress, cancelled=cancelled)


def vm_row(made: MadeVm) -> VmRow:
    """A made VM as the inventory lists it (for "use as a target")."""
    return VmRow(made.name, made.power_state, made.host, made.cpus, made.memory_mb, made.gpus, "", made.ip, made.tools, "")


def snapshots_of(vcenter: VCenter, ctx: TargetContext, vm: str) -> list[SnapshotRow]:
    """The snapshots of ``vm``, parents first."""
    with connect(vcenter, ctx) as session:
        return list_snapshots(session, find_vm(session, vm))


def snapshot_action(vcenter: VCenter, ctx: TargetContext, vm: str, action: str, name: str,
                    description: str = "", memory: bool = False) -> list[SnapshotRow]:
    """``take``, ``revert`` or ``delete`` the snapshot ``name`` of ``vm``; returns the snapshots after it."""
    with connect(vcenter, ctx) as session:
        obj = find_vm(session, vm)
        if action == "take":
            create_snapshot(session, obj, name, description, memory=memory)
        elif action == "revert":
            revert_snapshot(session, obj, name)
        elif action == "delete":
            delete_snapshot(session, obj, name)
        else:
            raise ValueError(f"unknown snapshot action {action!r}")
        return list_snapshots(session, obj)


def clone_experiment(vcenter: VCenter, ctx: TargetContext, vm: str, snapshot: str, name: str) -> MadeVm:
    """A linked clone of ``vm`` at ``snapshot`` on the same host (with a free GPU when ``vm`` has one)."""
    with connect(vcenter, ctx) as session:
        return clone_for_experiment(session, vm, snapshot, name)


def clusters(vcenter: VCenter, ctx: TargetContext) -> list[ClusterView]:
    """The cluster view: clusters with HA and DRS, hosts with GPUs and VMs."""
    with connect(vcenter, ctx) as session:
        return cluster_view(session)


def datastore_names(vcenter: VCenter, ctx: TargetContext) -> list[str]:
    """The vCenter's datastores, by name."""
    with connect(vcenter, ctx) as session:
        return datastores(session)


def browse_folder(vcenter: VCenter, ctx: TargetContext, datastore: str, folder: str) -> list[Entry]:
    """The files and folders of ``folder`` on ``datastore`` (read-only)."""
    with connect(vcenter, ctx) as session:
        return browse(session, datastore, folder)


def protection(target: VSphereTarget, ctx: TargetContext) -> list[Check]:
    """How well the training VM is protected: its disks' failures to tolerate and its cluster's HA
    (warnings, never errors: an unprotected VM still trains)."""
    try:
        with connect(ctx.settings.vcenter(target.vcenter), ctx) as session:
            return preflight_vm(connect_spbm(session), find_vm(session, target.vm, "VM"))
    except TargetError as exc:  # no SPBM (a single ESXi host), no privilege, the VM renamed: not checked
        return [Check("storage_policy", SKIPPED, f"storage policies and HA not checked: {exc.message}", exc.hint)]
