"""The GPUs of a host for VMs: PCI passthrough devices (free or used by which VM) and vGPU profiles.

A passthrough device is one GPU for one VM: a device another VM on the host is configured
with counts as used even while that VM is off, because it could not power on otherwise.
vGPU profiles (NVIDIA GRID / AI Enterprise) share a GPU; the host lists the ones it offers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyVmomi import vim, vmodl

from ..targets.vsphere import VCenterSession
from .errors import BadInput, choices
from .tasks import properties

_PCI_DISPLAY_CLASS = 0x03  # PCI base class of display controllers (VGA 0x0300, 3D 0x0302)
VGPU_PREFIX = "vgpu:"


@dataclass(frozen=True)
class PciGpu:
    """A GPU of a host that can be passed through to a VM."""

    id: str                      # PCI address, e.g. 0000:3b:00.0
    name: str                    # e.g. NVIDIA A100-PCIE-40GB
    vendor_id: int
    device_id: int
    system_id: str               # the host's id for passthrough backings
    used_by: tuple[str, ...] = ()

    @property
    def free(self) -> bool:
        """No VM on the host is configured with this device."""
        return not self.used_by


@dataclass(frozen=True)
class HostGpus:
    """What a host offers VMs: passthrough GPUs and vGPU profiles (with the VMs using them)."""

    host: str
    passthrough: tuple[PciGpu, ...]
    vgpu_profiles: tuple[str, ...]
    vgpus_in_use: tuple[tuple[str, str], ...] = ()   # (VM, profile)


@dataclass(frozen=True)
class VmDevices:
    """A VM's name, host and devices, as read once for all GPU questions."""

    name: str
    host: Any
    devices: tuple[Any, ...]


def vm_devices(session: VCenterSession) -> list[VmDevices]:
    """Every VM with its host and devices (templates included: cloning one copies its devices)."""
    return [VmDevices(p.get("name", ""), p.get("runtime.host"), tuple(p.get("config.hardware.device") or ()))
            for _, p in session.collect(vim.VirtualMachine, ["name", "runtime.host", "config.hardware.device"])]


def _passthrough_targets(session: VCenterSession, host: vim.HostSystem) -> dict[str, str]:
    """PCI id -> system id of the devices the host's environment browser offers VMs."""
    compute = properties(session, host, ["parent"]).get("parent")
    browser = properties(session, compute, ["environmentBrowser"]).get("environmentBrowser") if compute else None
    if browser is None:
        return {}
    try:
        target = browser.QueryConfigTarget(host=host)
    except vmodl.MethodFault:  # a host being reconnected, no privilege: fall back to the host's own list
        return {}
    return {info.pciDevice.id: info.systemId for info in (target.pciPassthrough if target else None) or ()
            if isinstance(info, vim.vm.PciPassthroughInfo) and info.pciDevice is not None}


def host_gpus(session: VCenterSession, host: vim.HostSystem, vms: list[VmDevices] | None = None) -> HostGpus:
    """The passthrough GPUs of ``host`` (free or used) and its vGPU profiles."""
    p = properties(session, host, ["name", "hardware.pciDevice", "config.pciPassthruInfo",
                                   "config.sharedPassthruGpuTypes", "hardware.systemInfo.uuid"])
    devices = {d.id: d for d in p.get("hardware.pciDevice") or ()}
    active = [info.id for info in p.get("config.pciPassthruInfo") or () if info.passthruActive]
    offered = _passthrough_targets(session, host)
    # The environment browser is what vCenter itself offers for a new passthrough device; a host
    # that lists none there (some standalone hosts, the simulator) is read from its own config.
    ids = list(offered) if offered else active
    used: dict[str, list[str]] = {}
    vgpus: list[tuple[str, str]] = []
    for vm in vm_devices(session) if vms is None else vms:
        if vm.host != host:
            continue
        for device in vm.devices:
            if not isinstance(device, vim.vm.device.VirtualPCIPassthrough):
                continue
            if isinstance(device.backing, vim.vm.device.VirtualPCIPassthrough.DeviceBackingInfo):
                used.setdefault(device.backing.id, []).append(vm.name)
            elif isinstance(device.backing, vim.vm.device.VirtualPCIPassthrough.VmiopBackingInfo):
                vgpus.append((vm.name, device.backing.vgpu))
    gpus = []
    for pci_id in ids:
        device = devices.get(pci_id)
        if device is None or (device.classId >> 8) & 0xFF != _PCI_DISPLAY_CLASS:
            continue  # NICs, NVMe drives and other passthrough devices are not GPUs
        gpus.append(PciGpu(pci_id, device.deviceName or device.vendorName or "PCI device", device.vendorId & 0xFFFF,
                           device.deviceId & 0xFFFF, offered.get(pci_id) or p.get("hardware.systemInfo.uuid", ""),
                           tuple(sorted(used.get(pci_id, ())))))
    return HostGpus(p.get("name", ""), tuple(gpus), tuple(p.get("config.sharedPassthruGpuTypes") or ()), tuple(vgpus))


def pick_gpu(gpus: HostGpus, wanted: str, option: str = "--gpu") -> PciGpu | str:
    """The GPU ``wanted`` names on the host: a free :class:`PciGpu` (by PCI id or device name, or
    ``any``) or a vGPU profile (``vgpu:PROFILE``, returned as the profile string)."""
    if wanted.startswith(VGPU_PREFIX):
        profile = wanted[len(VGPU_PREFIX):]
        if profile not in gpus.vgpu_profiles:
            raise BadInput(option, f"host {gpus.host} offers no vGPU profile {profile!r}",
                           f"profiles of {gpus.host}: {choices(list(gpus.vgpu_profiles))}")
        return profile
    free = [g for g in gpus.passthrough if g.free]
    offer = f"free GPUs of {gpus.host}: {choices([f'{g.id} ({g.name})' for g in free])}"
    if wanted == "any":
        if not free:
            raise BadInput(option, f"host {gpus.host} has no free passthrough GPU", offer)
        return free[0]
    short = wanted.lower()
    matches = [g for g in gpus.passthrough if short in (g.id.lower(), g.id.lower().removeprefix("0000:"), g.name.lower())]
    if not matches:
        raise BadInput(option, f"host {gpus.host} has no passthrough GPU {wanted!r}", offer)
    for gpu in matches:
        if gpu.free:
            return gpu
    raise BadInput(option, f"GPU {wanted} of host {gpus.host} is used by {', '.join(matches[0].used_by)}", offer)


def gpu_device(choice: PciGpu | str, key: int = -200) -> vim.vm.device.VirtualPCIPassthrough:
    """The device to add for a GPU chosen by :func:`pick_gpu`."""
    if isinstance(choice, str):
        backing: Any = vim.vm.device.VirtualPCIPassthrough.VmiopBackingInfo(vgpu=choice)
    else:
        backing = vim.vm.device.VirtualPCIPassthrough.DeviceBackingInfo(
            id=choice.id, deviceId=format(choice.device_id, "x"), systemId=choice.system_id,
            vendorId=choice.vendor_id if choice.vendor_id < 0x8000 else choice.vendor_id - 0x10000,  # an xsd:short
            deviceName=choice.name)
    return vim.vm.device.VirtualPCIPassthrough(key=key, backing=backing)


def gpu_extra_config(choice: PciGpu | str) -> dict[str, str]:
    """Advanced settings a passthrough GPU needs: datacenter GPUs have BARs above 4 GB, which the
    VM's firmware maps only with 64-bit MMIO; 128 GB of MMIO space fits one 80 GB GPU."""
    if isinstance(choice, str):
        return {}
    return {"pciPassthru.use64bitMMIO": "TRUE", "pciPassthru.64bitMMIOSizeGB": "128"}
