"""What the app calls: preflight, launch, start a trainer command, inventory, trust (a started run's
liveness and stop: :mod:`.run_control`).

Every function is blocking and thread-safe in the sense that it shares no state: call it
from a worker thread with plain data (targets, paths, a :class:`TargetContext`) and show
the dataclass it returns. Errors are :class:`TargetError` subclasses with a ``hint``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from . import credentials
from .errors import TargetError, UntrustedCertificate, UntrustedHostKey
from .launch import (MappedJob, TrainerJob, check_trainer_runs, map_job, record_start, start_here, start_with_shell,
                     train_job)
from .model import LocalTarget, SshTarget, Target, TargetSettings, VCenter, VSphereTarget
from .model import RayTarget
from .prepare import PreparedRun, prepare_run
from .preflight import ERROR, Check, PreflightReport, check_free_slot, run_preflight
from .runinfo import RunInfo, start_moment
from .shell import LocalShell, Shell
from .vsphere import CertificateInfo, VCenterSession, VmRow, connect_vcenter, fetch_certificate, normalize_thumbprint

if TYPE_CHECKING:
    from .guestops import GuestOps


def _keyring_password(account: str, what: str) -> str:
    return credentials.require_password(account, what)


@dataclass(frozen=True)
class TargetContext:
    """What the backend needs besides a target: the saved settings, the app's known_hosts file,
    and where passwords come from (the OS keyring unless a test says otherwise)."""

    settings: TargetSettings
    known_hosts: Path
    password: Callable[[str, str], str] = field(default=_keyring_password)


@dataclass
class LaunchOutcome:
    """A launch attempt: the preflight it ran and, when it started, the run's ``run.json``."""

    report: PreflightReport
    info: RunInfo | None = None
    prepared: PreparedRun | None = None

    @property
    def started(self) -> bool:
        return self.info is not None


def connect(vcenter: VCenter, ctx: TargetContext) -> VCenterSession:
    """Log in to a vCenter with its keyring password (TLS verified or pinned)."""
    return connect_vcenter(vcenter, ctx.password(vcenter.secret_account(), f"vCenter {vcenter.host}"))


@contextlib.contextmanager
def open_shell(target: Target, ctx: TargetContext, prepared: PreparedRun | None = None) -> Iterator[Shell]:
    """A shell on ``target`` (SSH, Guest Operations or local), closed on exit."""
    if isinstance(target, RayTarget):  # Ray picks the node when it starts a run: there is no shell to open
        raise TargetError(f"{target.name} is a Ray cluster: commands reach it as Ray jobs, not through a shell",
                          "use its preflight, or run the command on a node of the cluster")
    if isinstance(target, LocalTarget):
        yield LocalShell()
        return
    if isinstance(target, SshTarget):
        from .ssh import SshShell
        shell = SshShell(target, ctx.known_hosts)
        try:
            yield shell
        finally:
            shell.close()
        return
    with connect(ctx.settings.vcenter(target.vcenter), ctx) as session:
        if target.launch == "ssh":
            from .ssh import SshShell
            shell = SshShell(target.ssh_target(session.guest_ip(target.vm)), ctx.known_hosts)
            try:
                yield shell
            finally:
                shell.close()
            return
        from .guestops import guest_shell
        if prepared is None:
            raise TargetError("Guest Operations need a run folder for their output", "prepare the run first")
        yield guest_shell(guest_ops(session, target, ctx), prepared)


def guest_ops(session: VCenterSession, target: VSphereTarget, ctx: TargetContext) -> GuestOps:
    """Guest Operations on ``target``'s VM with its guest login (the password from the keyring)."""
    from .guestops import GuestOps
    return GuestOps(session, target.vm, target.guest_user,
                    ctx.password(target.guest_secret_account(), f"the guest OS of {target.vm}"))


def preflight(target: Target, config_path: Path | str, ctx: TargetContext, *,
              workspace: Path | str | None = None, allow_busy: bool = False) -> tuple[PreparedRun | None, PreflightReport]:
    """Map the config for ``target``, write it to the run folder and check everything there.

    An unknown SSH host key or untrusted vCenter certificate ends up in ``report.trust``
    (with the fingerprint to show); the user may pin it and run the preflight again.
    """
    report = PreflightReport(target.name)
    try:
        prepared = prepare_run(config_path, target)
    except TargetError as exc:
        report.add("config", ERROR, exc.message, exc.hint)
        return None, report
    if workspace is not None and not allow_busy and not check_free_slot(target, workspace, report):
        return prepared, report  # nothing else matters until the target is free
    if isinstance(target, RayTarget):  # no shell there: the cluster's Jobs API answers for it
        from .ray_preflight import ray_checks
        report.checks += ray_checks(target).checks
        return prepared, report
    try:
        with open_shell(target, ctx, prepared) as shell:
            checks = run_preflight(shell, prepared, target)
    except (UntrustedHostKey, UntrustedCertificate) as exc:
        report.trust = exc
        report.add("reachable", ERROR, exc.message, exc.hint)
        return prepared, report
    except TargetError as exc:
        report.add("reachable", ERROR, exc.message, exc.hint)
        return prepared, report
    report.checks += checks.checks
    report.doctor = checks.doctor
    return prepared, report


#: A launch option's step between a passing preflight and the start (a VM snapshot, say):
#: ``step(target, prepared, ctx)`` returns the check it made; an error check stops the launch.
BeforeStart = Callable[[Target, PreparedRun, TargetContext], Check]


def launch(target: Target, config_path: Path | str, ctx: TargetContext, *, workspace: Path | str | None = None,
           allow_busy: bool = False, before_start: BeforeStart | None = None,
           checked: tuple[PreparedRun, PreflightReport] | None = None) -> LaunchOutcome:
    """Preflight, then start the trainer detached on ``target``; returns at once after the start.

    ``before_start`` runs after the preflight passed, just before the start; its check joins
    the report, and an error there means the trainer is not started. ``checked`` is a passing
    preflight made moments ago for this config and target (the queue makes them ahead, see
    ``lora_studio.fleet.ahead``): only the free slot is checked again.
    """
    if checked is None:
        prepared, report = preflight(target, config_path, ctx, workspace=workspace, allow_busy=allow_busy)
    else:
        prepared = checked[0]
        report = PreflightReport(target.name, list(checked[1].checks), checked[1].doctor)
        if workspace is not None and not allow_busy:
            check_free_slot(target, workspace, report)
    outcome = LaunchOutcome(report, prepared=prepared)
    if prepared is None or not report.ok:
        return outcome
    if before_start is not None:
        try:
            report.checks.append(before_start(target, prepared, ctx))
        except TargetError as exc:  # a step should answer with a check; one that raises still stops the launch
            report.add("before_start", ERROR, exc.message, exc.hint)
        if not report.ok:
            return outcome
    try:
        outcome.info = start(target, prepared, ctx)
    except TargetError as exc:  # the preflight passed but the start failed: one place to look
        report.add("launch", ERROR, exc.message, exc.hint)
    return outcome


def start(target: Target, prepared: PreparedRun, ctx: TargetContext) -> RunInfo:
    """Start the trainer for an already prepared (and preflighted) run."""
    return start_job(target, train_job(prepared), ctx)


def start_job(target: Target, job: TrainerJob, ctx: TargetContext, *, check_trainer: bool = False) -> RunInfo:
    """Start ``job`` detached on ``target`` and write its ``run.json``; returns once it has started.

    The one way the app starts a trainer command, training and auto-captioning alike: the
    paths are mapped to the target's view (:class:`~.launch.PathsNotVisible` names every one it
    cannot see), and the command runs in a session of its own in the run folder, its output in
    ``train.log``, over the target's channel: this machine, SSH, SSH to a VM's guest IP, or
    Guest Operations. ``check_trainer`` first checks that the trainer runs there, for commands
    started without a preflight. Blocking: call it from a worker. Raises TargetError subclasses.
    """
    mapped = map_job(job, target)
    extra = {"kind": job.command}  # what the run folder holds, for readers that list runs
    if isinstance(target, RayTarget):  # Ray queues it and picks the node; run.json names the job
        from .ray_jobs import submit_run
        return submit_run(target, mapped, extra)
    if isinstance(target, LocalTarget):
        if check_trainer:
            check_trainer_runs(LocalShell(), target)
        started = start_moment(mapped.local_run_dir)
        pid, host = start_here(target, mapped)
        return record_start(target, mapped, pid=pid, host=host, launch="subprocess", started=started, extra=extra)
    from .ssh import SshShell
    if isinstance(target, SshTarget):
        with SshShell(target, ctx.known_hosts) as shell:
            return _start_over_ssh(shell, target, mapped, check_trainer, extra)
    with connect(ctx.settings.vcenter(target.vcenter), ctx) as session:
        if target.launch == "ssh":
            with SshShell(target.ssh_target(session.guest_ip(target.vm)), ctx.known_hosts) as shell:
                return _start_over_ssh(shell, target, mapped, check_trainer, extra, vm=target.vm, vcenter=target.vcenter)
        from .guestops import guest_shell, start_in_guest
        ops = guest_ops(session, target, ctx)
        if check_trainer:
            check_trainer_runs(guest_shell(ops, mapped.prepared()), target)
        started = start_moment(mapped.local_run_dir)
        pid = start_in_guest(ops, target, mapped)
        return record_start(target, mapped, pid=pid, host=ops.vm_name, launch="guest_ops", started=started,
                            vm=target.vm, vcenter=target.vcenter, extra=extra)


def _start_over_ssh(shell: Shell, target: Target, mapped: MappedJob, check_trainer: bool, extra: dict[str, Any],
                    vm: str = "", vcenter: str = "") -> RunInfo:
    if check_trainer:
        check_trainer_runs(shell, target)
    started = start_moment(mapped.local_run_dir)
    pid = start_with_shell(shell, target, mapped)
    return record_start(target, mapped, pid=pid, host=shell.host, launch="ssh", started=started, vm=vm,
                        vcenter=vcenter, extra=extra)


def vcenter_certificate(vcenter: VCenter) -> CertificateInfo:
    """The certificate a vCenter presents (for the "trust this certificate?" dialog)."""
    return fetch_certificate(vcenter.host, vcenter.port)


def pin_vcenter(settings: TargetSettings, name: str, thumbprint: str) -> TargetSettings:
    """Settings with vCenter ``name`` pinned to ``thumbprint`` (the caller saves them)."""
    pinned = normalize_thumbprint(thumbprint)
    return replace(settings, vcenters=[replace(vc, thumbprint=pinned) if vc.name == name else vc for vc in settings.vcenters])


def trust_ssh_host(ctx: TargetContext, unknown: UntrustedHostKey) -> None:
    """Pin the host key the user just confirmed (from the UntrustedHostKey the preflight reported)."""
    from .ssh import trust_host_key
    trust_host_key(ctx.known_hosts, unknown.host, unknown.port, unknown.key)


def inventory(vcenter: VCenter, ctx: TargetContext) -> list[VmRow]:
    """Every VM of ``vcenter`` with power state, host, CPUs, memory, GPUs, guest OS, IP and tools."""
    with connect(vcenter, ctx) as session:
        return session.inventory()


def power_on(vcenter: VCenter, vm: str, ctx: TargetContext) -> str:
    """Power a VM on and wait; returns its power state."""
    with connect(vcenter, ctx) as session:
        return session.power_on(vm)


def install_trainer(target: Target, wheel: str, ctx: TargetContext, prepared: PreparedRun | None = None,
                    venv: str | None = None) -> str:
    """pip-install the trainer from ``wheel`` (as the target sees it) into a venv there; returns its python.

    The caller stores the returned interpreter as the target's ``python``.
    """
    from .install import DEFAULT_VENV, install_trainer as _install
    with open_shell(target, ctx, prepared) as shell:
        python, _ = _install(shell, wheel, venv or DEFAULT_VENV)
    return python
