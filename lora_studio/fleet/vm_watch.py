"""What vCenter says about the VMs runs are on: power state, and the connection state of their host.

A trainer cannot say that its VM was powered off or that its host died: its heartbeat just
stops. vCenter can, at once. One login per vCenter and two property reads (every VM's name,
power state and host; every host's name and connection state) answer for all the runs of a pass.
Blocking: call it from a worker. A vCenter that cannot be asked gives states that say so
(``error``) instead of raising: recovery then goes by the heartbeat alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pyVmomi import vim

from ..targets.api import TargetContext, connect
from ..targets.errors import TargetError
from ..targets.model import Target, VSphereTarget
from ..targets.runinfo import RunInfo

VmKey = tuple[str, str]  # (vCenter name, VM name)
DOWN_POWER = ("poweredOff", "suspended")
DOWN_HOST = ("disconnected", "notResponding")


@dataclass(frozen=True)
class VmState:
    """One VM as vCenter reports it now (``error``: vCenter could not be asked, nothing is known)."""

    vcenter: str
    vm: str
    power_state: str = ""       # poweredOn | poweredOff | suspended
    host: str = ""
    host_connection: str = ""   # connected | disconnected | notResponding
    error: str = ""

    @property
    def powered_down(self) -> bool:
        """Powered off or suspended: nothing runs in it."""
        return self.power_state in DOWN_POWER

    @property
    def host_down(self) -> bool:
        """Its host is disconnected or not responding (the VM may run on, or be dead with it)."""
        return self.host_connection in DOWN_HOST

    @property
    def usable(self) -> bool:
        """Powered on on a connected host: a run can start in it again (vSphere HA may have restarted it)."""
        return not self.error and self.power_state == "poweredOn" and not self.host_down

    def describe(self) -> str:
        """``VM gpu-07 is poweredOff (vCenter lab)``, ``host esx-3 of VM gpu-07 is notResponding (vCenter lab)``."""
        if self.error:
            return f"vCenter {self.vcenter} could not be asked about VM {self.vm}: {self.error}"
        if self.powered_down or not self.host_down:
            return f"VM {self.vm} is {self.power_state or 'not found'} (vCenter {self.vcenter})"
        return f"host {self.host or '?'} of VM {self.vm} is {self.host_connection} (vCenter {self.vcenter})"


def vm_of(info: RunInfo | None, targets: Iterable[Target]) -> VmKey | None:
    """The VM a run was started in: from its run.json, else from its target's definition; None for no VM."""
    if info is None:
        return None
    if info.vm and info.vcenter:
        return info.vcenter, info.vm
    target = next((t for t in targets if t.name == info.target_name), None)
    return (target.vcenter, target.vm) if isinstance(target, VSphereTarget) else None


def target_vm(target: Target) -> VmKey | None:
    """The VM a target starts runs in, or None for a target that is no VM."""
    return (target.vcenter, target.vm) if isinstance(target, VSphereTarget) else None


def vm_states(ctx: TargetContext, wanted: Iterable[VmKey]) -> dict[VmKey, VmState]:
    """The state of every wanted VM, one vCenter session each; a VM vCenter does not know comes back without a power state."""
    by_vcenter: dict[str, set[str]] = {}
    for vcenter, vm in wanted:
        by_vcenter.setdefault(vcenter, set()).add(vm)
    states: dict[VmKey, VmState] = {}
    for vcenter, vms in by_vcenter.items():
        try:
            with connect(ctx.settings.vcenter(vcenter), ctx) as session:
                hosts = {h._moId: (p.get("name", ""), str(p.get("runtime.connectionState", "")))
                         for h, p in session.collect(vim.HostSystem, ["name", "runtime.connectionState"])}
                seen = {p.get("name"): p for _, p in session.collect(vim.VirtualMachine,
                                                                     ["name", "runtime.powerState", "runtime.host"])}
        except (TargetError, OSError) as exc:
            states.update({(vcenter, vm): VmState(vcenter, vm, error=str(exc)) for vm in vms})
            continue
        except Exception as exc:  # noqa: BLE001 - pyvmomi raises many kinds; recovery then goes by the heartbeat
            states.update({(vcenter, vm): VmState(vcenter, vm, error=f"{exc.__class__.__name__}: {exc}") for vm in vms})
            continue
        for vm in vms:
            props = seen.get(vm)
            if props is None:
                states[(vcenter, vm)] = VmState(vcenter, vm)  # removed or renamed: no power state
                continue
            ref = props.get("runtime.host")
            host, connection = hosts.get(ref._moId, ("", "")) if ref is not None else ("", "")
            states[(vcenter, vm)] = VmState(vcenter, vm, str(props.get("runtime.powerState", "")), host, connection)
    return states
