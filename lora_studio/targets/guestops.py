"""Launching and controlling the trainer through VMware Tools' Guest Operations API.

For VMs with no network path from the desktop. The API starts a program and reports its
pid and exit code, but captures no output: so every command writes its output into
files in the run folder, which the desktop reads over the shared storage. On Linux
guests VMware Tools starts programs through bash; we pass ``/bin/bash -c <quoted script>``.
"""

from __future__ import annotations

import posixpath
import secrets as _random
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from pyVmomi import vim

from . import commands
from .errors import ConnectionFailed, LaunchFailed, TargetError
from .launch import MappedJob, trainer_argv
from .model import VSphereTarget
from .prepare import PreparedRun
from .shell import CommandResult
from .vsphere import VCenterSession

SCRATCH = ".lora-studio-guest"


@dataclass(frozen=True)
class GuestProcess:
    """A process as ListProcessesInGuest reports it."""

    pid: int
    cmdline: str
    running: bool
    exit_code: int | None


class GuestOps:
    """Guest Operations on one VM with one guest login (password from the keyring, in memory only)."""

    def __init__(self, session: VCenterSession, vm_name: str, user: str, password: str) -> None:
        self.session, self.vm_name = session, vm_name
        self.vm = session.find_vm(vm_name)
        self.auth = vim.vm.guest.NamePasswordAuthentication(username=user, password=password, interactiveSession=False)
        manager = session.content.guestOperationsManager
        if manager is None:
            raise TargetError("this vCenter offers no Guest Operations", "launch over SSH to the guest IP instead")
        self.pm = manager.processManager

    def _call(self, what: str, fn, **kwargs):
        try:
            return fn(vm=self.vm, auth=self.auth, **kwargs)
        except vim.fault.InvalidGuestLogin:
            raise ConnectionFailed(f"the guest OS of {self.vm_name} refused the login {self.auth.username}",
                                   "check the guest user and the password saved for it") from None
        except vim.fault.InvalidPowerState:
            raise TargetError(f"{self.vm_name} is not powered on", "power the VM on first") from None
        except (vim.fault.GuestOperationsUnavailable, vim.fault.GuestOperationsFault) as exc:
            raise TargetError(f"{what} on {self.vm_name} failed: {getattr(exc, 'msg', exc)}",
                              "check that VMware Tools runs in the guest") from None

    def start(self, script: str, cwd: str = "/", env: Sequence[str] = ()) -> int:
        """Run a bash script in the guest; returns its pid at once."""
        spec = vim.vm.guest.ProcessManager.ProgramSpec(programPath="/bin/bash", arguments="-c " + shlex.quote(script),
                                                       workingDirectory=cwd, envVariables=list(env))
        return int(self._call("StartProgramInGuest", self.pm.StartProgramInGuest, spec=spec))

    def processes(self, pids: Sequence[int]) -> list[GuestProcess]:
        """The given processes (a finished one carries its exit code)."""
        found = self._call("ListProcessesInGuest", self.pm.ListProcessesInGuest, pids=[int(p) for p in pids]) or []
        # An exit code of 0 may be left out of the SOAP answer (omitempty): absent means 0.
        return [GuestProcess(int(p.pid), p.cmdLine or "", p.endTime is None,
                             None if p.endTime is None else int(p.exitCode or 0)) for p in found]

    def terminate(self, pid: int) -> None:
        """TerminateProcessInGuest (SIGTERM, then SIGKILL by VMware Tools after a while)."""
        self._call("TerminateProcessInGuest", self.pm.TerminateProcessInGuest, pid=int(pid))


class GuestShell:
    """A :class:`Shell` over Guest Operations: output goes to files in a shared scratch folder."""

    def __init__(self, ops: GuestOps, local_scratch: Path | str, target_scratch: str, poll_s: float = 0.2) -> None:
        self.ops, self.poll_s = ops, poll_s
        self.local_scratch, self.target_scratch = Path(local_scratch), target_scratch
        self.host = ops.vm_name

    def run_script(self, script: str, timeout: float = 60.0) -> CommandResult:
        token = _random.token_hex(6)
        self.local_scratch.mkdir(parents=True, exist_ok=True)
        out, err, rc = (posixpath.join(self.target_scratch, f"{token}.{n}") for n in ("out", "err", "rc"))
        q = commands.join
        wrapped = f"( {script} ) > {q([out])} 2> {q([err])} < /dev/null; echo $? > {q([rc])}.tmp && mv {q([rc + '.tmp'])} {q([rc])}"
        pid = self.ops.start(wrapped, cwd="/")
        local = {n: self.local_scratch / f"{token}.{n}" for n in ("out", "err", "rc")}
        deadline = time.monotonic() + timeout
        try:
            while not local["rc"].exists():
                if time.monotonic() > deadline:
                    self.ops.terminate(pid)
                    return CommandResult(124, "", f"timed out after {timeout:.0f} s in {self.host}")
                done = [p for p in self.ops.processes([pid]) if not p.running]
                if done and not local["rc"].exists():
                    time.sleep(1.0)  # the exit is known; give the shared storage a moment to show the files
                    if not local["rc"].exists():
                        return CommandResult(done[0].exit_code or 1, "",
                                             f"the command ran in {self.host} but its output is not visible at "
                                             f"{self.local_scratch}: check the path mapping")
                time.sleep(self.poll_s)
            code = int(local["rc"].read_text().strip() or 1)
            return CommandResult(code, _read(local["out"]), _read(local["err"]))
        finally:
            for path in local.values():
                path.unlink(missing_ok=True)

    def run(self, argv: Sequence[str], timeout: float = 60.0) -> CommandResult:
        return self.run_script(commands.join(argv), timeout)

    def close(self) -> None:
        pass


def guest_shell(ops: GuestOps, prepared: PreparedRun) -> GuestShell:
    """A :class:`GuestShell` whose output files go to a scratch folder in the run folder (seen on both sides)."""
    return GuestShell(ops, Path(prepared.local_run_dir) / SCRATCH, posixpath.join(prepared.target_run_dir, SCRATCH))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


class GuestProcessControl:
    """Liveness with ListProcessesInGuest, signals with TerminateProcessInGuest."""

    def __init__(self, ops: GuestOps, pid: int) -> None:
        self.ops, self.pid = ops, int(pid)

    def is_alive(self) -> bool:
        return any(p.running for p in self.ops.processes([self.pid]))

    def signal(self, name: str) -> None:
        # The API has one way to stop a process (TERM, then KILL by VMware Tools); both stages use it.
        self.ops.terminate(self.pid)


def start_in_guest(ops: GuestOps, target: VSphereTarget, mapped: MappedJob) -> int:
    """Start the trainer command through StartProgramInGuest, output in the run folder's train.log; its pid.

    ``exec`` keeps VMware Tools' pid the trainer's own, so liveness and signals reach it.
    """
    try:
        return ops.start(commands.exec_in_run_dir(trainer_argv(target, mapped), mapped.run_dir), cwd=mapped.run_dir)
    except TargetError as exc:
        raise LaunchFailed(f"could not start the trainer in {ops.vm_name}: {exc.message}", exc.hint) from None
