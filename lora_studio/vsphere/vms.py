"""Making trainer VMs: clone (or linked clone), reconfigure, power on, wait for VMware Tools and an IP.

:func:`create_vm` runs a :class:`~.newvm.Plan` in steps, each a vCenter task reported through
``progress`` and cancellable through ``cancelled``. A VM left half-made by a failure or a
cancel during the clone or the reconfiguration is removed again, so a retry with the same
name works; once the VM is powered on it is kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable

from pyVmomi import vim

from ..targets.vsphere import VCenterSession, describe_gpus
from .errors import Cancelled, VSphereError
from . import inventory
from .hardware import GB, config_spec, disk_bytes, disks, nics, passthrough_gpus
from .newvm import NewVm, Plan, plan
from .tasks import CancelCheck, Progress, call, properties, wait_task


@dataclass(frozen=True)
class MadeVm:
    """A VM as made, read back from vCenter."""

    name: str
    host: str
    datastores: tuple[str, ...]
    cpus: int
    memory_mb: int
    disk_gb: float
    network: str
    gpus: tuple[str, ...]
    memory_reserved: bool      # the full memory reservation GPUs need
    power_state: str
    ip: str
    tools: str
    linked_to: str = ""        # "VM@snapshot" for a linked clone


def _never() -> bool:
    return False


def describe(session: VCenterSession, vm: vim.VirtualMachine, linked_to: str = "") -> MadeVm:
    """``vm`` as :class:`MadeVm` (its first disk's size, the first adapter's network)."""
    p = properties(session, vm, ["name", "runtime.host", "datastore", "network", "config.hardware.numCPU",
                                 "config.hardware.memoryMB", "config.hardware.device", "config.memoryReservationLockedToMax",
                                 "runtime.powerState",
                                 "guest.ipAddress", "guest.toolsRunningStatus"])
    devices = p.get("config.hardware.device") or []
    host = p.get("runtime.host")
    vm_disks, vm_nics = disks(devices), nics(devices)
    network = ""
    if vm_nics:
        backing = vm_nics[0].backing
        network = getattr(backing, "deviceName", "") or ""
        if not network and isinstance(backing, vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo):
            key = backing.port.portgroupKey
            network = next((properties(session, n, ["name"]).get("name", "") for n in p.get("network") or ()
                            if isinstance(n, vim.dvs.DistributedVirtualPortgroup) and n.key == key), key)
    return MadeVm(p.get("name", ""), properties(session, host, ["name"]).get("name", "") if host is not None else "",
                  tuple(properties(session, ds, ["name"]).get("name", "") for ds in p.get("datastore") or ()),
                  int(p.get("config.hardware.numCPU") or 0), int(p.get("config.hardware.memoryMB") or 0),
                  disk_bytes(vm_disks[0]) / GB if vm_disks else 0.0, network, describe_gpus(devices),
                  bool(p.get("config.memoryReservationLockedToMax")), str(p.get("runtime.powerState", "")),
                  p.get("guest.ipAddress") or "", str(p.get("guest.toolsRunningStatus") or ""), linked_to)


def _clone_spec(plan_: Plan) -> vim.vm.CloneSpec:
    location = vim.vm.RelocateSpec(pool=plan_.pool, host=plan_.host, datastore=plan_.datastore)
    if plan_.snapshot is not None:
        # A linked clone: its disks are children of the snapshot's, sharing the unchanged blocks.
        location.diskMoveType = "createNewChildDiskBacking"
    if plan_.hardware.profile_id:
        location.profile = [vim.vm.DefinedProfileSpec(profileId=plan_.hardware.profile_id)]
    # Powered on only after the reconfiguration, so the guest boots with its GPU and cloud-init data.
    return vim.vm.CloneSpec(location=location, powerOn=False, template=False, snapshot=plan_.snapshot)


def _remove(session: VCenterSession, vm: vim.VirtualMachine, name: str) -> str:
    """Remove a half-made (powered-off) VM from the inventory and disk; what to tell the user."""
    try:
        wait_task(session, call(f"removing {name}", vm.Destroy_Task), f"removing the half-made VM {name}", timeout=600)
    except VSphereError as exc:  # the original failure is what the user must see; the leftover is named
        return f"remove the half-made VM {name} in vSphere Client ({exc.message})"
    return f"the clone {name} was removed again"


def power_on_and_wait(session: VCenterSession, vm: vim.VirtualMachine, name: str, wait_s: float, *,
                      progress: Progress | None = None, cancelled: CancelCheck | None = None) -> str:
    """Power ``vm`` on (when off), then wait up to ``wait_s`` for VMware Tools and an IP; returns the IP.

    A cancel stops the waiting (the VM stays on) and returns "".
    """
    cancelled = cancelled or _never
    if properties(session, vm, ["runtime.powerState"]).get("runtime.powerState") != vim.VirtualMachinePowerState.poweredOn:
        wait_task(session, call(f"power on {name}", vm.PowerOnVM_Task), f"powering on {name}", progress=progress)
    if wait_s <= 0:
        return ""
    step = f"waiting for VMware Tools and an IP in {name}"
    if progress:
        progress(step, None)
    deadline, delay = time.monotonic() + wait_s, 0.05
    while not cancelled():
        p = properties(session, vm, ["guest.toolsRunningStatus", "guest.ipAddress"])
        if p.get("guest.toolsRunningStatus") == "guestToolsRunning" and p.get("guest.ipAddress"):
            return str(p["guest.ipAddress"])
        if time.monotonic() > deadline:
            raise VSphereError(f"{name} is on but reported no IP within {wait_s:.0f} s",
                               "open its console: the guest must run VMware Tools (open-vm-tools) and get an address")
        time.sleep(delay)  # a guest boots in tens of seconds: back off to one poll every 2 s
        delay = min(delay * 1.5, 2.0)
    return ""


def run_plan(session: VCenterSession, plan_: Plan, *, progress: Progress | None = None,
             cancelled: CancelCheck | None = None) -> MadeVm:
    """Make the VM of ``plan_``: clone, reconfigure, then power on and wait (as the request asks)."""
    req, cancelled = plan_.request, cancelled or _never
    source_name = properties(session, plan_.source, ["name"]).get("name", req.template)
    task = call(f"cloning {source_name}", plan_.source.CloneVM_Task, folder=plan_.folder, name=req.name,
                spec=_clone_spec(plan_))
    vm = wait_task(session, task, f"cloning {source_name} to {req.name}", progress=progress, cancelled=cancelled)
    try:
        if cancelled():
            raise Cancelled(f"making {req.name} was cancelled")
        here = properties(session, vm, ["runtime.host"]).get("runtime.host")
        if plan_.host is not None and here != plan_.host:
            # vCenter places the clone where asked; this only corrects a clone left on the
            # template's host (so the GPU chosen on the host asked is really its own).
            wait_task(session, call("moving the clone", vm.RelocateVM_Task, spec=vim.vm.RelocateSpec(
                host=plan_.host, pool=plan_.pool)), f"moving {req.name} to {plan_.host_name}", progress=progress)
        devices = properties(session, vm, ["config.hardware.device"]).get("config.hardware.device") or []
        spec = config_spec(devices, plan_.hardware)
        wait_task(session, call(f"reconfiguring {req.name}", vm.ReconfigVM_Task, spec=spec),
                  f"configuring {req.name}", progress=progress, cancelled=cancelled)
        if cancelled():
            raise Cancelled(f"making {req.name} was cancelled")
    except Exception as exc:
        note = _remove(session, vm, req.name)
        if isinstance(exc, Cancelled):
            raise Cancelled(exc.message, note) from None
        if isinstance(exc, VSphereError):
            raise VSphereError(exc.message, f"{exc.hint}; {note}") from None
        raise
    ip = ""
    if req.power_on:
        ip = power_on_and_wait(session, vm, req.name, req.wait_ip_s, progress=progress, cancelled=cancelled)
    linked = f"{source_name}@{req.snapshot}" if req.snapshot else ""
    made = describe(session, vm, linked)
    return made if not ip or made.ip else replace(made, ip=ip)


def create_vm(session: VCenterSession, req: NewVm, *, policy_id: Callable[[str], str] | None = None,
              progress: Progress | None = None, cancelled: CancelCheck | None = None) -> MadeVm:
    """Check, resolve and make the trainer VM ``req`` asks for (see :mod:`.newvm` for what is refused)."""
    return run_plan(session, plan(session, req, policy_id), progress=progress, cancelled=cancelled)


def clone_for_experiment(session: VCenterSession, vm_name: str, snapshot: str, name: str, *, gpu: str = "same",
                         power_on: bool = False, wait_ip_s: float = 0.0, progress: Progress | None = None,
                         cancelled: CancelCheck | None = None) -> MadeVm:
    """A linked clone of ``vm_name`` at its ``snapshot``, on the same host: seconds to make, little disk.

    ``gpu`` "same" gives the clone a free passthrough GPU of the host when the VM has one (its
    own stays the VM's), "none" none, else a GPU as :func:`~.gpus.pick_gpu` takes it.
    """
    source = inventory.find_vm(session, vm_name, "--vm")
    p = properties(session, source, ["config.hardware.device", "runtime.host"])
    host = p.get("runtime.host")
    if gpu == "same":
        gpu = "any" if passthrough_gpus(p.get("config.hardware.device") or []) else ""
    elif gpu == "none":
        gpu = ""
    host_name = properties(session, host, ["name"]).get("name", "") if host is not None and gpu else ""
    req = NewVm(name=name, template=vm_name, snapshot=snapshot, host=host_name, gpu=gpu, power_on=power_on,
                wait_ip_s=wait_ip_s)
    return create_vm(session, req, progress=progress, cancelled=cancelled)
