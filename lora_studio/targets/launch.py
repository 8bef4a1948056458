"""Starting the trainer detached on a target and writing ``run.json``.

Launching returns at once: the trainer runs in a session of its own with its output in
the run folder, so the app (or the SSH connection that started it) can go away.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from lora_studio import __version__ as APP_VERSION
from lora_studio.frozen import trainer_python

from . import commands
from .errors import LaunchFailed
from .model import LocalTarget, Target
from .prepare import PreparedRun
from .runinfo import RunInfo, write_run_info
from .shell import LocalShell, Shell


def target_python(target: Target) -> str:
    """The interpreter command for the trainer on ``target``."""
    if isinstance(target, LocalTarget) and not target.python:
        return commands.join([trainer_python()])  # not sys.executable: in a bundle that is the app
    return target.python


def launch_with_shell(shell: Shell, prepared: PreparedRun, target: Target, launch: str,
                      env: dict[str, str] | None = None, vm: str = "", vcenter: str = "") -> RunInfo:
    """Start ``python -m trainer train`` detached through ``shell``; write and return ``run.json``."""
    argv = commands.train_argv(target_python(target), prepared.target_config)
    script = commands.detached_launch(argv, prepared.target_run_dir, env=env)
    started = time.time()
    result = shell.run_script(script, timeout=60)
    pid_text = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    if not result.ok or not pid_text.isdigit():
        detail = (result.stderr or result.stdout).strip()[-500:]
        if result.returncode == 97:
            detail = f"the run folder {prepared.target_run_dir} does not exist on {shell.host}"
        raise LaunchFailed(f"could not start the trainer on {shell.host}: {detail or f'exit {result.returncode}'}",
                           "run the preflight to see what is missing")
    info = RunInfo(target_kind=target.kind, target_name=target.name, host=shell.host, pid=int(pid_text),
                   command=argv, started_at=started, app_version=APP_VERSION, launch=launch,
                   run_dir=prepared.target_run_dir, config=prepared.target_config, vm=vm, vcenter=vcenter)
    write_run_info(prepared.local_run_dir, info)
    return info


def launch_local(prepared: PreparedRun, target: LocalTarget) -> RunInfo:
    """Start the trainer on this machine, detached (it outlives the app)."""
    if sys.platform == "win32":
        return _launch_windows(prepared, target)
    shell = LocalShell()
    return launch_with_shell(shell, prepared, target, "subprocess")


def _launch_windows(prepared: PreparedRun, target: LocalTarget) -> RunInfo:
    # Windows has no setsid: a detached process in a new process group outlives the app.
    import subprocess
    argv = commands.train_argv(target_python(target), prepared.target_config)
    log = open(Path(prepared.local_run_dir) / "train.log", "ab")
    flags = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
    with log:
        proc = subprocess.Popen(argv, cwd=prepared.local_run_dir, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, creationflags=flags, close_fds=True)
    info = RunInfo(target_kind="local", target_name=target.name, host=LocalShell().host, pid=proc.pid, command=argv,
                   started_at=time.time(), app_version=APP_VERSION, launch="subprocess",
                   run_dir=prepared.target_run_dir, config=prepared.target_config)
    write_run_info(prepared.local_run_dir, info)
    return info
