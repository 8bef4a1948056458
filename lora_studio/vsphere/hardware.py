"""The reconfiguration that turns a fresh clone into a trainer VM: CPUs, memory, disk, network,
GPU, advanced settings and storage policy, as one ``vim.vm.ConfigSpec``.

The spec edits the clone's own devices (read back after the clone), so device keys are the
VM's and the same code serves full and linked clones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyVmomi import vim

from .gpus import PciGpu, gpu_device, gpu_extra_config

GB = 1024 ** 3


@dataclass(frozen=True)
class Hardware:
    """What to change on the clone; zero / empty / None keeps the template's value."""

    cpus: int = 0
    memory_mb: int = 0
    disk_gb: float = 0.0
    network_backing: Any = None           # from :func:`nic_backing`
    gpu: PciGpu | str | None = None       # a passthrough GPU or a vGPU profile
    extra_config: dict[str, str] = field(default_factory=dict)
    profile_id: str = ""                  # SPBM policy for the VM home and every disk
    drop_passthrough: bool = False        # remove passthrough GPUs a clone copied from its source


def disks(devices: list[Any] | tuple[Any, ...]) -> list[vim.vm.device.VirtualDisk]:
    """The VM's virtual disks, in device order (the first is the boot disk of a template)."""
    return [d for d in devices or () if isinstance(d, vim.vm.device.VirtualDisk)]


def nics(devices: list[Any] | tuple[Any, ...]) -> list[vim.vm.device.VirtualEthernetCard]:
    """The VM's network adapters, in device order."""
    return [d for d in devices or () if isinstance(d, vim.vm.device.VirtualEthernetCard)]


def passthrough_gpus(devices: list[Any] | tuple[Any, ...]) -> list[vim.vm.device.VirtualPCIPassthrough]:
    """The VM's fixed passthrough devices (each names one physical device of its host)."""
    return [d for d in devices or () if isinstance(d, vim.vm.device.VirtualPCIPassthrough)
            and isinstance(d.backing, vim.vm.device.VirtualPCIPassthrough.DeviceBackingInfo)]


def disk_bytes(disk: vim.vm.device.VirtualDisk) -> int:
    """A disk's capacity in bytes (``capacityInBytes`` where the host reports it)."""
    return int(disk.capacityInBytes or 0) or int(disk.capacityInKB or 0) * 1024


def nic_backing(network: Any, name: str, dvs_uuid: str = "", portgroup_key: str = "") -> Any:
    """The adapter backing that connects to ``network``: a distributed port group needs its
    switch's UUID and its key; a standard port group is named."""
    if isinstance(network, vim.dvs.DistributedVirtualPortgroup):
        port = vim.dvs.PortConnection(portgroupKey=portgroup_key, switchUuid=dvs_uuid)
        return vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo(port=port)
    if isinstance(network, vim.OpaqueNetwork):  # NSX segments
        summary = network.summary
        return vim.vm.device.VirtualEthernetCard.OpaqueNetworkBackingInfo(
            opaqueNetworkId=summary.opaqueNetworkId, opaqueNetworkType=summary.opaqueNetworkType)
    return vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName=name, network=network)


def _profile(profile_id: str) -> list[vim.vm.DefinedProfileSpec]:
    return [vim.vm.DefinedProfileSpec(profileId=profile_id)] if profile_id else []


def policy_changes(devices: list[Any] | tuple[Any, ...], profile_id: str) -> list[vim.vm.device.VirtualDeviceSpec]:
    """Device edits that put every disk under the policy ``profile_id``."""
    return [vim.vm.device.VirtualDeviceSpec(operation="edit", device=disk, profile=_profile(profile_id))
            for disk in disks(devices)]


def config_spec(devices: list[Any] | tuple[Any, ...], hw: Hardware) -> vim.vm.ConfigSpec:
    """The reconfiguration of a VM whose current devices are ``devices`` to ``hw``.

    The disk and adapter objects of ``devices`` are edited in place (read from the VM for this).
    """
    spec = vim.vm.ConfigSpec()
    if hw.cpus:
        spec.numCPUs = hw.cpus
    if hw.memory_mb:
        spec.memoryMB = hw.memory_mb
    changes: dict[int, vim.vm.device.VirtualDeviceSpec] = {}
    if hw.profile_id:
        spec.vmProfile = _profile(hw.profile_id)
        changes.update({c.device.key: c for c in policy_changes(devices, hw.profile_id)})
    vm_disks = disks(devices)
    if hw.disk_gb and vm_disks:
        disk = vm_disks[0]
        size = int(hw.disk_gb * GB)
        disk.capacityInBytes, disk.capacityInKB = size, size // 1024
        changes.setdefault(disk.key, vim.vm.device.VirtualDeviceSpec(operation="edit", device=disk))
    vm_nics = nics(devices)
    if hw.network_backing is not None and vm_nics:
        nic = vm_nics[0]
        nic.backing = hw.network_backing
        changes[nic.key] = vim.vm.device.VirtualDeviceSpec(operation="edit", device=nic)
    device_changes = list(changes.values())
    if hw.drop_passthrough:
        # A clone copies its source's passthrough device, which names a physical GPU the source
        # owns: the two VMs could never run at once. The clone gets its own GPU (or none).
        device_changes += [vim.vm.device.VirtualDeviceSpec(operation="remove", device=d) for d in passthrough_gpus(devices)]
    extra = dict(hw.extra_config)
    if hw.gpu is not None:
        device_changes.append(vim.vm.device.VirtualDeviceSpec(operation="add", device=gpu_device(hw.gpu)))
        # Passthrough and vGPU both need the guest's memory reserved in full (the device DMAs into
        # it); locking the reservation to the size keeps that true when memory is changed later.
        spec.memoryReservationLockedToMax = True
        extra = {**gpu_extra_config(hw.gpu), **extra}
    spec.deviceChange = device_changes
    spec.extraConfig = [vim.option.OptionValue(key=k, value=v) for k, v in extra.items()]
    return spec
