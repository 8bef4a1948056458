"""A new trainer VM as asked (:class:`NewVm`) and as resolved against the inventory (:class:`Plan`).

:func:`check` refuses bad numbers without a vCenter; :func:`plan` then looks every name up
and refuses what vCenter would refuse late (a name in use, a datastore the host does not
mount, a GPU another VM has, a disk smaller than the template's), each naming the option and
what exists instead. Nothing is changed in vCenter until :mod:`.vms` runs the plan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from pyVmomi import vim

from ..targets.vsphere import VCenterSession
from . import inventory
from .cloudinit import GuestSetup, guestinfo
from .errors import BadInput
from .gpus import PciGpu, host_gpus, pick_gpu
from .hardware import GB, Hardware, disk_bytes, disks, nic_backing
from .snapshots import find_snapshot
from .tasks import properties

MAX_CPUS, MAX_MEMORY_GB, MAX_DISK_GB = 768, 24 * 1024, 62 * 1024   # vSphere 8 limits (62 TB VMDK)
_EXTRA_KEY = re.compile(r"^[A-Za-z0-9_.:-]+$")


@dataclass(frozen=True)
class NewVm:
    """A trainer VM to make: clone ``template`` (or, with ``snapshot``, a linked clone of that
    VM's snapshot). Zero / empty fields keep what the template has; ``host`` or ``cluster``
    empty means where the template is."""

    name: str
    template: str
    host: str = ""
    cluster: str = ""
    resource_pool: str = ""
    datastore: str = ""
    policy: str = ""
    cpus: int = 0
    memory_gb: float = 0.0
    disk_gb: float = 0.0
    network: str = ""
    gpu: str = ""                 # PCI id or device name of a free passthrough GPU, "any", or "vgpu:PROFILE"
    snapshot: str = ""
    guest: GuestSetup = field(default_factory=GuestSetup)
    extra_config: dict[str, str] = field(default_factory=dict)
    power_on: bool = True
    wait_ip_s: float = 600.0      # 0: do not wait for VMware Tools and an IP


@dataclass
class Plan:
    """A :class:`NewVm` resolved: the objects to clone from and to, and the reconfiguration."""

    request: NewVm
    source: Any
    snapshot: Any
    folder: Any
    pool: Any
    host: Any
    datastore: Any
    hardware: Hardware
    host_name: str = ""


def check(req: NewVm) -> None:
    """Refuse values no vCenter accepts, before connecting (names, numbers, option clashes)."""
    if not req.name.strip() or len(req.name) > 80 or any(ch in req.name for ch in "/\\%"):
        raise BadInput("--name", f"{req.name!r} is not a usable VM name", "use 1-80 characters without / \\ or %")
    if not req.template.strip():
        raise BadInput("--template", "no template given", "name the template (or VM) to clone")
    for option, value, top in (("--cpus", req.cpus, MAX_CPUS), ("--memory-gb", req.memory_gb, MAX_MEMORY_GB),
                               ("--disk-gb", req.disk_gb, MAX_DISK_GB)):
        if value < 0 or value > top:
            raise BadInput(option, f"{value:g} is out of range", f"use a number from 1 to {top}, or leave it out")
    if req.memory_gb and round(req.memory_gb * 1024) % 4:
        raise BadInput("--memory-gb", f"{req.memory_gb:g} GB is not a multiple of 4 MB", "use whole gigabytes")
    if req.snapshot and req.disk_gb:
        raise BadInput("--disk-gb", "a linked clone's disk cannot grow (it is a delta of the snapshot's)",
                       "leave --disk-gb out, or make a full clone without --snapshot")
    for key in req.extra_config:
        if not _EXTRA_KEY.match(key):
            raise BadInput("--extra-config", f"{key!r} is not an advanced setting name", "use KEY=VALUE, e.g. pciPassthru.use64bitMMIO=TRUE")
    if req.wait_ip_s < 0:
        raise BadInput("--wait-ip", f"{req.wait_ip_s:g} is negative", "give seconds, or 0 not to wait")


def _placement(session: VCenterSession, req: NewVm, source: Any) -> tuple[Any, Any, Any, str]:
    """(host or None, pool, host or cluster for datastores/networks, its name) for the request."""
    cluster = inventory.find(session, vim.ClusterComputeResource, req.cluster, "--cluster", "cluster") if req.cluster else None
    host = inventory.find(session, vim.HostSystem, req.host, "--host", "host") if req.host else None
    if host is None and cluster is None:
        host = properties(session, source, ["runtime.host"]).get("runtime.host")
        if host is None:
            raise BadInput("--host", f"template {req.template} is on no host", "name the host (or cluster) for the VM")
    compute = inventory.compute_of(session, host) if host is not None else cluster
    if cluster is not None and compute != cluster:
        hosts = [properties(session, h, ["name"]).get("name", "") for h in properties(session, cluster, ["host"]).get("host") or ()]
        raise BadInput("--host", f"host {req.host} is not in cluster {req.cluster}", f"hosts of {req.cluster}: {', '.join(sorted(hosts))}")
    if req.resource_pool:
        pool = inventory.find_pool(session, req.resource_pool, compute)
    else:
        pool = properties(session, compute, ["resourcePool"]).get("resourcePool")
    where = host if host is not None else compute
    return host, pool, where, properties(session, where, ["name"]).get("name", "")


def _backing(session: VCenterSession, network: Any, name: str) -> Any:
    if isinstance(network, vim.dvs.DistributedVirtualPortgroup):
        p = properties(session, network, ["key", "config.distributedVirtualSwitch"])
        switch = p.get("config.distributedVirtualSwitch")
        uuid = properties(session, switch, ["uuid"]).get("uuid", "") if switch is not None else ""
        return nic_backing(network, name, uuid, p.get("key", ""))
    return nic_backing(network, name)


def _gpu(session: VCenterSession, req: NewVm, host: Any) -> PciGpu | str | None:
    if not req.gpu:
        return None
    if host is None:
        raise BadInput("--gpu", "a GPU is chosen on one host", "add --host with the host whose GPU the VM gets")
    return pick_gpu(host_gpus(session, host), req.gpu)


def plan(session: VCenterSession, req: NewVm, policy_id: Callable[[str], str] | None = None) -> Plan:
    """Resolve ``req`` against the inventory; :class:`BadInput` for anything that does not fit.

    ``policy_id(name)`` turns a storage policy name into its id (see :mod:`.policies`).
    """
    check(req)
    inventory.require_free_name(session, req.name)
    source = inventory.find_source(session, req.template)
    snapshot = None
    if req.snapshot:
        snapshot = find_snapshot(session, source, req.snapshot, option="--snapshot")
    host, pool, where, where_name = _placement(session, req, source)
    datastore = inventory.find_datastore(session, req.datastore, where, where_name) if req.datastore else None
    src = properties(session, source, ["parent", "config.hardware.device"])
    if src.get("parent") is None:
        raise BadInput("--template", f"{req.template} is inside a vApp", "clone a template or VM that is in a VM folder")
    template_disks = disks(src.get("config.hardware.device") or [])
    if req.disk_gb and template_disks and req.disk_gb * GB < disk_bytes(template_disks[0]):
        raise BadInput("--disk-gb", f"{req.disk_gb:g} GB is smaller than the template's {disk_bytes(template_disks[0]) / GB:g} GB disk",
                       "disks can only grow: give at least the template's size")
    backing = None
    if req.network:
        backing = _backing(session, inventory.find_network(session, req.network, where, where_name), req.network)
    gpu = _gpu(session, req, host)
    profile = policy_id(req.policy) if req.policy and policy_id else ""
    if req.policy and not policy_id:
        raise BadInput("--policy", "storage policies need the SPBM service", "connect with policies enabled")
    extra = {**guestinfo(req.guest, req.name), **req.extra_config}
    hardware = Hardware(cpus=req.cpus, memory_mb=round(req.memory_gb * 1024), disk_gb=req.disk_gb,
                        network_backing=backing, gpu=gpu, extra_config=extra, profile_id=profile,
                        drop_passthrough=True)
    return Plan(req, source, snapshot, src["parent"], pool, host, datastore, hardware,
                properties(session, host, ["name"]).get("name", "") if host is not None else "")
