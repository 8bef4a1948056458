"""The cluster view: each cluster's HA and DRS state, its hosts with their GPUs (free or used)
and the VMs on each host. Standalone hosts are listed under a cluster entry of their own
with ``standalone`` set."""

from __future__ import annotations

from dataclasses import dataclass

from pyVmomi import vim

from ..targets.vsphere import VCenterSession, describe_gpus
from .gpus import HostGpus, VmDevices, host_gpus


@dataclass(frozen=True)
class HostVm:
    """A VM on a host, as the cluster view lists it."""

    name: str
    power_state: str
    gpus: tuple[str, ...]
    template: bool = False


@dataclass(frozen=True)
class HostView:
    """A host: its state, GPUs and VMs."""

    name: str
    connection: str            # connected | disconnected | notResponding
    maintenance: bool
    cpus: int                  # physical cores
    memory_gb: float
    gpus: HostGpus
    vms: tuple[HostVm, ...]


@dataclass(frozen=True)
class ClusterView:
    """A cluster with HA and DRS, or (``standalone``) one host outside any cluster."""

    name: str
    standalone: bool
    ha: bool
    drs: bool
    drs_behavior: str          # manual | partiallyAutomated | fullyAutomated ("" when DRS is off)
    hosts: tuple[HostView, ...]


_HOST_PROPS = ["name", "parent", "runtime.connectionState", "runtime.inMaintenanceMode",
               "hardware.cpuInfo.numCpuCores", "hardware.memorySize"]


def cluster_view(session: VCenterSession) -> list[ClusterView]:
    """Every cluster and standalone host with hosts, GPUs and VMs, by name."""
    rows = [p for _, p in session.collect(vim.VirtualMachine, ["name", "runtime.host", "config.hardware.device",
                                                                "runtime.powerState", "config.template"])]
    vms = [VmDevices(p.get("name", ""), p.get("runtime.host"), tuple(p.get("config.hardware.device") or ())) for p in rows]
    per_host: dict[object, list[HostVm]] = {}
    for p in rows:
        if p.get("runtime.host") is not None:
            per_host.setdefault(p["runtime.host"], []).append(HostVm(
                p.get("name", ""), str(p.get("runtime.powerState", "")),
                describe_gpus(p.get("config.hardware.device") or []), bool(p.get("config.template"))))
    clusters = {c: p for c, p in session.collect(vim.ClusterComputeResource, ["name", "configurationEx"])}
    grouped: dict[object, list[HostView]] = {}
    standalone_names: dict[object, str] = {}
    for host, p in session.collect(vim.HostSystem, _HOST_PROPS):
        parent = p.get("parent")
        view = HostView(p.get("name", ""), str(p.get("runtime.connectionState", "")),
                        bool(p.get("runtime.inMaintenanceMode")), int(p.get("hardware.cpuInfo.numCpuCores") or 0),
                        round(int(p.get("hardware.memorySize") or 0) / 1024 ** 3, 1), host_gpus(session, host, vms),
                        tuple(sorted(per_host.get(host, []), key=lambda v: v.name.lower())))
        key = parent if parent in clusters else host
        if key is host:
            standalone_names[host] = view.name
        grouped.setdefault(key, []).append(view)
    out = []
    for key, hosts in grouped.items():
        hosts.sort(key=lambda h: h.name.lower())
        if key in clusters:
            config = clusters[key].get("configurationEx")
            das, drs = getattr(config, "dasConfig", None), getattr(config, "drsConfig", None)
            drs_on = bool(drs is not None and drs.enabled)
            out.append(ClusterView(clusters[key].get("name", ""), False, bool(das is not None and das.enabled), drs_on,
                                   str(drs.defaultVmBehavior or "") if drs_on else "", tuple(hosts)))
        else:
            out.append(ClusterView(standalone_names[key], True, False, False, "", tuple(hosts)))
    return sorted(out, key=lambda c: (c.standalone, c.name.lower()))
