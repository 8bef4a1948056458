"""Label jobs on the targets of the Targets panel, and the list of places a job can run.

"This computer" is :class:`.launchers.LocalLauncher` (a child process of the app). Every
saved target gets a :class:`TargetLauncher`: the job starts detached on the target
(:mod:`.remote`, in a worker) and is followed through its run folder
(:class:`.watch.RunFolderProcess`). :func:`attach_process` follows a job found again after
the app restarted, whichever launcher started it.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject

from trainer.rundir import is_stale, local_pid_alive, read_status

from ..targets.api import TargetContext
from ..targets.errors import TargetError
from ..targets.model import LocalTarget, SshTarget, Target, load_settings
from ..targets.runinfo import read_run_info
from ..targets_ui.store import known_hosts_file, settings_file
from ..workers.tasks import TaskRunner
from .launchers import JobProcess, LabelLauncher, LocalLauncher
from .remote import LivenessProbe, option_value, signal_job, start_label_job
from .watch import RunFolderProcess


def app_context() -> TargetContext:
    """The targets saved in the Targets panel and the app's pinned host keys (passwords: the keyring)."""
    return TargetContext(load_settings(settings_file()), known_hosts_file())


def target_label(target: Target) -> str:
    """How the "Run on" list names a target: its name and where it is."""
    if isinstance(target, SshTarget):
        return f"{target.name} (SSH {target.user}@{target.host})"
    if isinstance(target, LocalTarget):
        return f"{target.name} (this computer, {target.python or 'the app’s Python'})"
    return f"{target.name} (VM {target.vm})"


class TargetLauncher:
    """A saved target: map the paths, start detached there, follow the run folder."""

    def __init__(self, target: Target, context: TargetContext, runner: TaskRunner) -> None:
        self.target, self.context, self.runner = target, context, runner
        self.name = target_label(target)
        self.target_name = target.name

    def start(self, label_args: list[str], cwd: Path, parent: QObject) -> JobProcess:
        """Start in a worker (returns at once); path and trainer problems arrive as a failed start."""
        run_dir = Path(option_value(label_args, "--run-dir"))
        target, ctx = self.target, self.context
        probe = LivenessProbe(run_dir, ctx)
        return RunFolderProcess(run_dir, self.runner, parent,
                                start_fn=lambda: start_label_job(target, ctx, list(label_args), run_dir),
                                alive_fn=probe.alive, signal_fn=lambda name: signal_job(run_dir, ctx, name),
                                close_fn=probe.close)


def available_launchers(runner: TaskRunner | None = None,
                        context: Callable[[], TargetContext] = app_context) -> list[LabelLauncher]:
    """This computer, then every saved target (each checked when a job starts, not here).

    Without a ``runner`` (nothing to start remote jobs with) only this computer is offered;
    an unreadable targets file leaves only this computer too (the Targets panel says why).
    """
    launchers: list[LabelLauncher] = [LocalLauncher()]
    if runner is None:
        return launchers
    try:
        ctx = context()
    except (TargetError, OSError):
        return launchers
    for target in ctx.settings.targets:
        if isinstance(target, LocalTarget) and not target.python and not target.mappings:
            continue  # the default "This computer" entry: the same as the first launcher
        launchers.append(TargetLauncher(target, ctx, runner))
    return launchers


def _local_pid(run_dir: Path) -> int | None:
    """The pid of a job this computer runs (from status.json), or None."""
    status = read_status(run_dir) or {}
    pid = status.get("pid")
    return pid if isinstance(pid, int) and status.get("host") == socket.gethostname() else None


def _local_alive(run_dir: Path) -> bool:
    status = read_status(run_dir)
    if status is not None and status.get("host") != socket.gethostname():
        return not is_stale(status)  # another desktop's app runs it: only its heartbeat can tell
    pid = _local_pid(run_dir)
    return pid is not None and local_pid_alive(pid)


def _local_signal(run_dir: Path, name: str) -> None:
    pid = _local_pid(run_dir)
    if pid is not None and local_pid_alive(pid):
        os.kill(pid, signal.SIGKILL if name == "KILL" else signal.SIGTERM)


def attach_process(run_dir: Path, runner: TaskRunner, parent: QObject,
                   context: Callable[[], TargetContext] = app_context) -> JobProcess:
    """Follow a job that is already running (or has ended) in ``run_dir``.

    A job started on a target has ``run.json``: the target is asked through the channel it
    names. A job of this computer's app has none (it was the app's child): its pid in
    status.json is checked here.
    """
    info = read_run_info(run_dir)
    if info is None:
        return RunFolderProcess(run_dir, runner, parent, alive_fn=lambda: _local_alive(run_dir),
                                signal_fn=lambda name: _local_signal(run_dir, name))
    try:
        ctx = context()
    except (TargetError, OSError):
        return RunFolderProcess(run_dir, runner, parent)  # the STOP file and the heartbeat still work
    probe = LivenessProbe(run_dir, ctx)
    return RunFolderProcess(run_dir, runner, parent, alive_fn=probe.alive,
                            signal_fn=lambda name: signal_job(run_dir, ctx, name), close_fn=probe.close)
