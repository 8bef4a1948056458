"""What a "new trainer VM" form can offer, read from the inventory in one go: the templates and
the VMs with snapshots (for linked clones), the hosts and clusters with the datastores,
networks, resource pools and GPUs each one has, and the storage policies.

The form fills its lists from this; :func:`~.newvm.plan` still checks every value again when
the VM is made (another admin may have taken the GPU meanwhile).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyVmomi import vim

from ..targets.vsphere import VCenterSession
from .errors import VSphereError
from .gpus import HostGpus, host_gpus, vm_devices
from .hardware import GB, disk_bytes, disks
from .policies import connect_spbm, list_policies
from .snapshots import list_snapshots


@dataclass(frozen=True)
class Source:
    """A template or VM to clone; ``snapshots`` are those a linked clone can start from."""

    name: str
    template: bool
    host: str
    cpus: int
    memory_mb: int
    disk_gb: float             # the first disk (a full clone's disk can only grow)
    snapshots: tuple[str, ...] = ()


@dataclass(frozen=True)
class Placement:
    """A host or a cluster a VM can go to, with what it offers there."""

    name: str
    cluster: str               # the host's cluster ("" standalone); for a cluster, its own name
    is_cluster: bool
    datastores: tuple[str, ...]
    networks: tuple[str, ...]
    pools: tuple[str, ...]     # resource pools; the first is the root pool
    gpus: HostGpus | None = None   # hosts only: a GPU is always one host's


@dataclass(frozen=True)
class NewVmChoices:
    """Everything the new-VM form lists, by name."""

    sources: tuple[Source, ...]
    placements: tuple[Placement, ...]
    policies: tuple[str, ...]
    policy_note: str = ""      # why there are no policies to choose (no SPBM service), "" when there are

    def source(self, name: str) -> Source | None:
        """The template or VM called ``name``."""
        return next((s for s in self.sources if s.name == name), None)

    def placement(self, name: str) -> Placement | None:
        """The host or cluster called ``name``."""
        return next((p for p in self.placements if p.name == name), None)


def _names(session: VCenterSession, kind: type) -> dict[Any, str]:
    return {obj: p.get("name", "") for obj, p in session.collect(kind, ["name"])}


def _sources(session: VCenterSession, hosts: dict[Any, str]) -> list[Source]:
    rows = session.collect(vim.VirtualMachine, ["name", "config.template", "runtime.host", "config.hardware.numCPU",
                                                "config.hardware.memoryMB", "config.hardware.device", "snapshot"])
    out = []
    for vm, p in rows:
        # Only VMs that have snapshots cost a second read (the tree); the rest are listed from this one.
        snapshots = tuple(row.name for row in list_snapshots(session, vm)) if p.get("snapshot") else ()
        template = bool(p.get("config.template"))
        if not template and not snapshots:
            continue  # a VM is a clone source only through a snapshot (a linked clone)
        vm_disks = disks(p.get("config.hardware.device") or [])
        out.append(Source(p.get("name", ""), template, hosts.get(p.get("runtime.host"), ""),
                          int(p.get("config.hardware.numCPU") or 0), int(p.get("config.hardware.memoryMB") or 0),
                          disk_bytes(vm_disks[0]) / GB if vm_disks else 0.0, snapshots))
    return sorted(out, key=lambda s: (not s.template, s.name.lower()))


def _pools(session: VCenterSession) -> dict[Any, list[str]]:
    """Resource pool names per owner (cluster or compute resource), the root pool first."""
    out: dict[Any, list[str]] = {}
    for pool, p in session.collect(vim.ResourcePool, ["name", "owner", "parent"]):
        names = out.setdefault(p.get("owner"), [])
        if isinstance(p.get("parent"), vim.ResourcePool):
            names.append(p.get("name", ""))
        else:  # the root pool's parent is the cluster or compute resource
            names.insert(0, p.get("name", ""))
    return out


def _sorted(names: list[str]) -> tuple[str, ...]:
    return tuple(sorted(names, key=str.lower))


def _placements(session: VCenterSession, hosts: dict[Any, str]) -> list[Placement]:
    datastores, networks, pools = _names(session, vim.Datastore), _names(session, vim.Network), _pools(session)
    clusters = {c: p for c, p in session.collect(vim.ClusterComputeResource, ["name", "datastore", "network"])}
    vms = vm_devices(session)  # read once for every host's GPU list
    out = []
    for cluster, p in clusters.items():
        out.append(Placement(p.get("name", ""), p.get("name", ""), True,
                             _sorted([datastores.get(d, "") for d in p.get("datastore") or ()]),
                             _sorted([networks.get(n, "") for n in p.get("network") or ()]), tuple(pools.get(cluster, ()))))
    for host, p in session.collect(vim.HostSystem, ["name", "parent", "datastore", "network"]):
        parent = p.get("parent")
        cluster = clusters.get(parent, {}).get("name", "")
        out.append(Placement(p.get("name", ""), cluster, False,
                             _sorted([datastores.get(d, "") for d in p.get("datastore") or ()]),
                             _sorted([networks.get(n, "") for n in p.get("network") or ()]),
                             tuple(pools.get(parent, ())), host_gpus(session, host, vms)))
    # Each cluster, then its hosts; standalone hosts last.
    return sorted(out, key=lambda pl: (not pl.cluster, pl.cluster.lower(), not pl.is_cluster, pl.name.lower()))


def new_vm_choices(session: VCenterSession) -> NewVmChoices:
    """The templates, linked-clone sources, places and storage policies a new VM can use."""
    hosts = _names(session, vim.HostSystem)
    policies: tuple[str, ...] = ()
    note = ""
    try:
        policies = tuple(p.name for p in list_policies(connect_spbm(session)))
    except VSphereError as exc:  # a single ESXi host, or no StorageProfile.View: the VM is made without one
        note = exc.message
    return NewVmChoices(tuple(_sources(session, hosts)), tuple(_placements(session, hosts)), policies, note)
