"""What each CLI subcommand does with a logged-in session, and how its result is printed:
a text table for people, or ``--json`` for scripts (the same dataclasses either way)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, is_dataclass
from typing import Any, Callable

from ..targets.vsphere import VCenterSession
from . import cluster, datastore, inventory, policies, snapshots, vms
from .cloudinit import GuestSetup, read_public_key
from .errors import BadInput
from .newvm import NewVm


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def emit(args: argparse.Namespace, data: Any, text: str) -> int:
    """Print ``data`` as JSON (``--json``) or ``text``; returns exit code 0."""
    print(json.dumps(_plain(data), indent=1, default=str) if args.json else text)
    return 0


def table(rows: list[list[Any]], header: list[str]) -> str:
    """Columns padded to their widest cell."""
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)


def _progress(args: argparse.Namespace) -> Callable[[str, "int | None"], None]:
    """Progress lines on stderr (stdout stays the result's, for --json)."""
    def show(step: str, percent: int | None) -> None:
        print(f"{step}…" + (f" {percent}%" if percent is not None else ""), file=sys.stderr, flush=True)
    return show


def _made_text(made: vms.MadeVm) -> str:
    lines = [f"{made.name}: {made.power_state} on {made.host}, {made.cpus} CPUs, {made.memory_mb / 1024:g} GB memory, "
             f"disk {made.disk_gb:g} GB on {', '.join(made.datastores)}, network {made.network or '-'}",
             f"  GPUs: {', '.join(made.gpus) or 'none'}" + (" (memory fully reserved)" if made.memory_reserved else "")]
    if made.linked_to:
        lines.append(f"  linked clone of {made.linked_to}")
    if made.ip:
        lines.append(f"  IP {made.ip} (VMware Tools running)")
    return "\n".join(lines)


def _guest(args: argparse.Namespace) -> GuestSetup:
    key = read_public_key(args.ssh_key_file) if args.ssh_key_file else ""
    return GuestSetup(share=args.share, share_kind=args.share_kind, mount_point=args.mount_point, wheel=args.wheel,
                      ssh_user=args.ssh_user, ssh_key=key, hostname=args.name)


def new_vm(args: argparse.Namespace, session: VCenterSession, cancelled: Callable[[], bool]) -> int:
    """``new-vm``: clone, configure, power on, wait."""
    req = NewVm(name=args.name, template=args.template, host=args.host, cluster=args.cluster,
                resource_pool=args.resource_pool, datastore=args.datastore, policy=args.policy, cpus=args.cpus,
                memory_gb=args.memory_gb, disk_gb=args.disk_gb, network=args.network, gpu=args.gpu,
                snapshot=args.snapshot, guest=_guest(args), extra_config=dict(args.extra_config),
                power_on=not args.no_power_on, wait_ip_s=args.wait_ip)
    policy_id = policies.policy_ids(policies.connect_spbm(session)) if req.policy else None
    made = vms.create_vm(session, req, policy_id=policy_id, progress=_progress(args), cancelled=cancelled)
    return emit(args, made, _made_text(made))


def list_vms(args: argparse.Namespace, session: VCenterSession, cancelled: Callable[[], bool]) -> int:
    """``list``: the inventory."""
    rows = session.inventory()
    return emit(args, rows, table([[r.name, r.power_state, r.host, r.cpus, f"{r.memory_mb / 1024:g}",
                                    ", ".join(r.gpus) or "-", r.ip or "-"] for r in rows],
                                  ["VM", "POWER", "HOST", "CPUS", "MEMORY_GB", "GPUS", "IP"]))


def _confirmed(args: argparse.Namespace, question: str) -> None:
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise BadInput("--yes", f"{question}: not confirmed", "pass --yes to confirm (there is no terminal to ask)")
    if input(f"{question}? [y/N] ").strip().lower() not in ("y", "yes"):
        raise BadInput("--yes", f"{question}: not confirmed", "nothing was changed")


def _snapshot_table(rows: list[snapshots.SnapshotRow]) -> str:
    return table([["  " * r.depth + r.name + (" (current)" if r.current else ""), r.created[:19], r.power_state,
                   r.description] for r in rows], ["SNAPSHOT", "CREATED", "VM_WAS", "DESCRIPTION"]) if rows else "no snapshots"


def snapshot(args: argparse.Namespace, session: VCenterSession, cancelled: Callable[[], bool]) -> int:
    """``snapshot``: take (--name), list (--list) or delete (--delete) snapshots."""
    vm = inventory.find_vm(session, args.vm)
    if args.list:
        rows = snapshots.list_snapshots(session, vm)
        return emit(args, rows, _snapshot_table(rows))
    if args.delete:
        snapshots.find_snapshot(session, vm, args.delete, "--delete")
        _confirmed(args, f"delete snapshot {args.delete} of {args.vm}" + (" and its children" if args.children else ""))
        snapshots.delete_snapshot(session, vm, args.delete, children=args.children, progress=_progress(args))
        rows = snapshots.list_snapshots(session, vm)
        return emit(args, rows, f"deleted {args.delete}\n{_snapshot_table(rows)}")
    row = snapshots.create_snapshot(session, vm, args.name, args.description, memory=args.memory, quiesce=args.quiesce,
                                    progress=_progress(args), cancelled=cancelled)
    return emit(args, row, f"took snapshot {row.name} of {args.vm}")


def revert(args: argparse.Namespace, session: VCenterSession, cancelled: Callable[[], bool]) -> int:
    """``revert``: back to a snapshot, after confirmation."""
    vm = inventory.find_vm(session, args.vm)
    snapshots.find_snapshot(session, vm, args.snapshot)
    _confirmed(args, f"revert {args.vm} to {args.snapshot}, losing its changes since")
    row = snapshots.revert_snapshot(session, vm, args.snapshot, progress=_progress(args))
    return emit(args, row, f"{args.vm} is at snapshot {row.name} again")


def clone(args: argparse.Namespace, session: VCenterSession, cancelled: Callable[[], bool]) -> int:
    """``clone``: a linked clone at a snapshot."""
    made = vms.clone_for_experiment(session, args.vm, args.snapshot, args.name, gpu=args.gpu, power_on=args.power_on,
                                    wait_ip_s=args.wait_ip, progress=_progress(args), cancelled=cancelled)
    return emit(args, made, _made_text(made))


def _policy_table(rows: list[policies.Policy]) -> str:
    def show(value: Any) -> str:
        return "-" if value is None else str(value)
    return table([[p.name, show(p.failures_to_tolerate), show(p.iops_limit),
                   "-" if p.thin is None else ("thin" if p.thin else "thick")] for p in rows],
                 ["POLICY", "FAILURES_TOLERATED", "IOPS_LIMIT", "PROVISIONING"])


def policies_cmd(args: argparse.Namespace, session: VCenterSession, cancelled: Callable[[], bool]) -> int:
    """``policies``: list, --create, --apply NAME --vm VM, --check --vm VM."""
    if (args.apply or args.check) and not args.vm:
        raise BadInput("--vm", "no VM given", "name the VM to " + ("apply the policy to" if args.apply else "check"))
    spbm = policies.connect_spbm(session)
    if args.create:
        made = policies.create_vsan_policy(spbm, args.create, failures_to_tolerate=args.failures_to_tolerate,
                                           iops_limit=args.iops_limit, thin=not args.thick)
        return emit(args, made, f"created storage policy\n{_policy_table([made])}")
    if args.apply:
        vm = inventory.find_vm(session, args.vm)
        policy = policies.find_policy(spbm, args.apply, "--apply")
        policies.apply_policy(session, vm, policy, progress=_progress(args))
        return emit(args, policy, f"applied {policy.name} to {args.vm} and its disks")
    if args.check:
        checks = policies.preflight_vm(spbm, inventory.find_vm(session, args.vm))
        return emit(args, checks, "\n".join(f"{c.status:8} {c.message}" + (f" ({c.hint})" if c.hint else "")
                                            for c in checks))
    rows = policies.list_policies(spbm)
    return emit(args, rows, _policy_table(rows))


def hosts(args: argparse.Namespace, session: VCenterSession, cancelled: Callable[[], bool]) -> int:
    """``hosts``: the cluster view."""
    view = cluster.cluster_view(session)
    lines = []
    for c in view:
        lines.append(f"host {c.name} (standalone)" if c.standalone else
                     f"cluster {c.name}: HA {'on' if c.ha else 'off'}, DRS {'off' if not c.drs else 'on'}"
                     + (f" ({c.drs_behavior})" if c.drs_behavior else ""))
        for h in c.hosts:
            free = sum(g.free for g in h.gpus.passthrough)
            lines.append(f"  {h.name}: {h.connection}{', maintenance' if h.maintenance else ''}, {h.cpus} cores, "
                         f"{h.memory_gb:g} GB, GPUs {free}/{len(h.gpus.passthrough)} free"
                         + (f", vGPU {', '.join(h.gpus.vgpu_profiles)}" if h.gpus.vgpu_profiles else ""))
            for g in h.gpus.passthrough:
                lines.append(f"    GPU {g.id} {g.name}: " + ("free" if g.free else f"used by {', '.join(g.used_by)}"))
            for v in h.vms:
                lines.append(f"    VM {v.name} ({'template' if v.template else v.power_state})"
                             + (f": {', '.join(v.gpus)}" if v.gpus else ""))
    return emit(args, view, "\n".join(lines))


def browse(args: argparse.Namespace, session: VCenterSession, cancelled: Callable[[], bool]) -> int:
    """``browse``: a datastore folder."""
    entries = datastore.browse(session, args.datastore, args.folder, args.pattern)
    return emit(args, entries, table([[e.name + ("/" if e.is_folder else ""), "" if e.is_folder else e.size,
                                       e.modified[:19]] for e in entries], ["NAME", "BYTES", "MODIFIED"])
                if entries else f"{datastore.datastore_path(args.datastore, args.folder)} is empty")


COMMANDS: dict[str, Callable[[argparse.Namespace, VCenterSession, Callable[[], bool]], int]] = {
    "list": list_vms, "new-vm": new_vm, "snapshot": snapshot, "revert": revert, "clone": clone,
    "policies": policies_cmd, "hosts": hosts, "browse": browse,
}


def run(args: argparse.Namespace, session: VCenterSession, cancelled: Callable[[], bool]) -> int:
    """Run the subcommand ``args.command``; returns the exit code."""
    return COMMANDS[args.command](args, session, cancelled)
