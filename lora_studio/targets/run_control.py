"""A started run's trainer: whether it still runs, and its stop, over the channel that started it.

The channel comes from the run's ``run.json``: this computer's process, an SSH login, the VM's
Guest Operations, a Ray job, or every node's torchrun for a run over several targets. Blocking
and stateless like :mod:`.api`: call from worker threads.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path
from typing import Callable, Iterator

from .api import TargetContext, connect, guest_ops
from .control import ProcessControl, ShellProcessControl
from .errors import TargetError
from .model import LocalTarget, RayTarget, SshTarget, VSphereTarget
from .node_control import nodes_control
from .placement import placement_of
from .runinfo import read_run_info
from .shell import LocalShell
from .stop import STOP_NOW_KILL_AFTER_S, StopResult, stop_now as _stop_now, stop_run


@contextlib.contextmanager
def run_control(run_dir: Path | str, ctx: TargetContext) -> Iterator[ProcessControl]:
    """Liveness and signals for the trainer of a run folder, over the channel that started it."""
    info = read_run_info(run_dir)
    if info is None:
        raise TargetError(f"{run_dir} has no readable run.json", "this run was not started by LoRA Studio; stop it with the STOP file")
    if info.target_kind == RayTarget.kind:  # run.json has the cluster's address: no saved target needed
        from .ray_jobs import control_of
        yield control_of(info)
        return
    if placement_of(info) is not None:  # a run over several targets: every node's torchrun
        nodes = nodes_control(placement_of(info), ctx)
        try:
            yield nodes
        finally:
            nodes.close()
        return
    if info.target_kind == LocalTarget.kind:
        # This machine needs no saved target; but a pid means this machine's process only when
        # the run was started here (the workspace may be shared with other desks).
        if info.host != socket.gethostname():
            raise TargetError(f"{run_dir} was started on {info.host}, not on this computer",
                              "stop it with the STOP file, or from the app on that computer")
        control = ShellProcessControl(LocalShell, info.pid)
    else:
        target = ctx.settings.target(info.target_name)
        if isinstance(target, VSphereTarget) and info.launch == "guest_ops":
            from .guestops import GuestProcessControl
            with connect(ctx.settings.vcenter(target.vcenter), ctx) as session:
                yield GuestProcessControl(guest_ops(session, target, ctx), info.pid)
            return
        from .ssh import SshShell
        ssh = target if isinstance(target, SshTarget) else target.ssh_target(info.host)
        control = ShellProcessControl(lambda: SshShell(ssh, ctx.known_hosts), info.pid)
    try:
        yield control
    finally:
        control.close()


class RunProbe:
    """Whether a run's trainer still runs, asked again and again over one kept connection.

    For a follower that asks every few seconds: one SSH login (or vCenter session) serves
    every check of the run, and is opened again after a failure. One check at a time (a
    lock), from worker threads.
    """

    def __init__(self, run_dir: Path | str, ctx: TargetContext) -> None:
        self.run_dir, self.ctx = run_dir, ctx
        self._lock = threading.Lock()
        self._stack: contextlib.ExitStack | None = None
        self._control: ProcessControl | None = None
        self._closed = False

    def alive(self) -> bool:
        """True while the process exists; raises TargetError when the target cannot be asked."""
        with self._lock:
            if self._closed:  # a check that was under way when the follower let go: no new connection
                raise TargetError("the run is no longer followed")
            if self._control is None:
                stack = contextlib.ExitStack()
                self._control = stack.enter_context(run_control(self.run_dir, self.ctx))
                self._stack = stack
            try:
                return self._control.is_alive()
            except TargetError:
                self._close()  # connect again next time
                raise

    def _close(self) -> None:
        if self._stack is not None:
            self._stack.close()
        self._stack, self._control = None, None

    def close(self) -> None:
        """Release the connection for good (the trainer is not affected)."""
        with self._lock:
            self._closed = True
            self._close()


def is_running(run_dir: Path | str, ctx: TargetContext) -> bool:
    """True while the run's trainer process exists on its machine (asks the target)."""
    with run_control(run_dir, ctx) as control:
        return control.is_alive()


def stop(run_dir: Path | str, ctx: TargetContext | None, *, grace_s: float = 60.0, kill_after_s: float = 60.0,
         use_stop_file: bool = True, on_stage: Callable[[str], None] | None = None, poll_s: float = 1.0) -> StopResult:
    """Stop a run: STOP file, then SIGTERM, then kill, reporting each stage to ``on_stage``.

    With ``ctx`` None (or no way to reach the target) only the STOP file is used.
    """
    if ctx is None:
        return stop_run(run_dir, None, grace_s=grace_s, poll_s=poll_s, use_stop_file=use_stop_file, on_stage=on_stage)
    from .ray_jobs import ray_job_of, stop_ray_run
    if ray_job_of(read_run_info(run_dir)) is not None:  # Ray may still hold it queued: a stop of its own
        return stop_ray_run(run_dir, grace_s=grace_s, kill_after_s=kill_after_s, poll_s=poll_s,
                            use_stop_file=use_stop_file, on_stage=on_stage)
    try:
        with run_control(run_dir, ctx) as control:
            return stop_run(run_dir, control, grace_s=grace_s, kill_after_s=kill_after_s, poll_s=poll_s,
                            use_stop_file=use_stop_file, on_stage=on_stage)
    except TargetError:
        if not use_stop_file:
            raise
        return stop_run(run_dir, None, grace_s=grace_s, poll_s=poll_s, on_stage=on_stage)


def stop_now(run_dir: Path | str, ctx: TargetContext | None, *, kill_after_s: float = STOP_NOW_KILL_AFTER_S,
             poll_s: float = 1.0, on_stage: Callable[[str], None] | None = None) -> StopResult:
    """Stop at once, losing the current step: SIGTERM, then kill, over the run's channel.

    Raises TargetError when the trainer cannot be signalled (no ``ctx``, no run.json, the
    target unreachable); the STOP file of a stop already asked for still works then.
    """
    if ctx is None:
        raise TargetError("no connection to the target to signal the trainer",
                          "wait for it to stop after this step, or end it on its machine")
    from .ray_jobs import ray_job_of, stop_ray_run
    if ray_job_of(read_run_info(run_dir)) is not None:  # Ray may still hold it queued: a stop of its own
        return stop_ray_run(run_dir, now=True, kill_after_s=kill_after_s, poll_s=poll_s, on_stage=on_stage)
    with run_control(run_dir, ctx) as control:
        return _stop_now(run_dir, control, kill_after_s=kill_after_s, poll_s=poll_s, on_stage=on_stage)
