"""The launch option "snapshot the VM before this run": a snapshot named after the run, taken
after the preflight passed and before the trainer starts.

It keeps the VM as it was when the run began (driver, CUDA, packages), so an experiment that
breaks the VM is one revert away. A launch hook (:data:`lora_studio.targets.api.BeforeStart`):
it answers with a check, and an error check stops the launch, so a run never starts
unprotected when the user asked for the snapshot.
"""

from __future__ import annotations

import time
from pathlib import Path

from pyVmomi import vmodl

from ..targets.api import TargetContext, connect
from ..targets.errors import TargetError
from ..targets.model import Target, VSphereTarget
from ..targets.preflight import ERROR, OK, Check
from ..targets.prepare import PreparedRun
from .errors import fault_text
from .inventory import find_vm
from .snapshots import create_snapshot, list_snapshots

CHECK = "snapshot"


def run_snapshot_name(run: str, taken: set[str]) -> str:
    """``run``, or ``run (2)``, ``run (3)``… when the VM has one by that name (a resumed run)."""
    name, counter = run, 2
    while name in taken:
        name, counter = f"{run} ({counter})", counter + 1
    return name


def snapshot_before_run(target: Target, prepared: PreparedRun, ctx: TargetContext) -> Check:
    """Snapshot ``target``'s VM, named after the run folder; an error check when it cannot be taken."""
    if not isinstance(target, VSphereTarget):
        return Check(CHECK, ERROR, f"{target.name} is not a vSphere VM: there is no VM to snapshot",
                     "turn off “Snapshot the VM first”, or run on a vSphere target")
    run = Path(prepared.local_run_dir).name
    description = (f"Taken by LoRA Studio before run {run} started, {time.strftime('%Y-%m-%d %H:%M')}; "
                   f"config {prepared.target_config}")
    try:
        with connect(ctx.settings.vcenter(target.vcenter), ctx) as session:
            vm = find_vm(session, target.vm)
            name = run_snapshot_name(run, {row.name for row in list_snapshots(session, vm)})
            row = create_snapshot(session, vm, name, description)
    except TargetError as exc:
        return Check(CHECK, ERROR, f"the run was not started: no snapshot of {target.vm} could be taken ({exc.message})",
                     exc.hint or "start it without the snapshot, or look at the VM in vSphere Client")
    except vmodl.MethodFault as exc:  # a fault outside a task (a session that expired, a privilege)
        return Check(CHECK, ERROR, f"the run was not started: no snapshot of {target.vm} could be taken "
                     f"({fault_text(exc)})", "check the vCenter user's VirtualMachine.State.CreateSnapshot privilege")
    return Check(CHECK, OK, f"took snapshot {row.name!r} of {target.vm} before the run")
