"""Starting a trainer command detached in a run folder: the job, its paths on the target, run.json.

Every trainer command the app runs (``train --config X``, ``label ...``) is a :class:`TrainerJob`:
its arguments and run folder as the desktop sees them. :func:`map_job` rewrites them to the
target's view through the target's :class:`~.pathmap.PathMapper`; the starters below put the
command in a session of its own with its output in the run folder's ``train.log``, so the app
(or the SSH connection that started it) can go away; :func:`record_start` writes ``run.json``,
which liveness checks and stops read later, from this app or a restarted one.
:func:`lora_studio.targets.api.start_job` ties these together for each kind of target.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from lora_studio import __version__ as APP_VERSION
from lora_studio.frozen import trainer_python

from trainer.rundir import CONFIG_FILE, LOG_FILE

from . import commands
from .errors import LaunchFailed, TargetConfigError
from .model import LocalTarget, Target
from .prepare import PreparedRun
from .runinfo import RunInfo, StartMoment, write_run_info
from .shell import LocalShell, Shell

INSTALL_HINT = ("install the trainer from the Targets panel (Install trainer from wheel…), "
                "or set the Python that has it in the target's settings")


@dataclass(frozen=True)
class TrainerJob:
    """One trainer command, as the desktop sees its paths.

    ``args`` follow ``python -m trainer`` (``("train", "--config", X)``, ``("label", ...)``);
    ``path_options`` names the options whose values are paths, each with the words a message
    uses for it ("the dataset folder"). ``run_dir`` is the run folder: the command runs
    there, its output goes to its ``train.log``, and ``run.json`` is written there.
    """

    args: tuple[str, ...]
    run_dir: Path
    path_options: Mapping[str, str] = field(default_factory=dict)

    @property
    def command(self) -> str:
        """The trainer subcommand (``train``, ``label``)."""
        return self.args[0]


@dataclass(frozen=True)
class MappedJob:
    """A :class:`TrainerJob` as the target sees it (``run_dir`` and the path arguments mapped)."""

    args: list[str]
    run_dir: str            # the run folder on the target
    local_run_dir: Path     # ... and on the desktop
    config: str = ""        # ``--config``'s value on the target, for run.json ("" when none)

    def prepared(self) -> PreparedRun:
        """The run folder's two views in the shape the shells take (Guest Operations keep their output there)."""
        return PreparedRun(Path(), self.local_run_dir, self.run_dir, self.config, values={}, local_paths={})


class PathsNotVisible(TargetConfigError):
    """Paths of a job that the target cannot see; ``problems`` has one sentence a path, then what to do."""

    def __init__(self, target: Target, missing: Mapping[str, str]) -> None:
        seen = ", ".join(m.local for m in target.mapper().mappings) or "no mapped folder"
        hint = (f"add a path mapping for the missing folders (Targets panel, {target.name}, path mappings), "
                "or move them into the shared workspace")
        self.problems = [f"{target.name} cannot see {what}: {path}" for path, what in missing.items()]
        self.problems.append(f"{target.name} sees only {seen} — {hint}")
        super().__init__("; ".join(self.problems[:-1]), hint)


def train_job(prepared: PreparedRun) -> TrainerJob:
    """The ``train`` command of a prepared run (its config.yaml is in the run folder)."""
    config = Path(prepared.local_run_dir) / CONFIG_FILE
    return TrainerJob(("train", "--config", str(config)), Path(prepared.local_run_dir), {"--config": "the run's config"})


def map_job(job: TrainerJob, target: Target) -> MappedJob:
    """``job`` with its run folder and path arguments as ``target`` sees them; every unseen path reported at once."""
    mapper = target.mapper()
    missing: dict[str, str] = {}  # path -> what it is, in the order of the arguments

    def mapped(path: str, what: str) -> str:
        try:
            return mapper.to_target(path, what=what)
        except TargetConfigError:
            missing.setdefault(path, what)  # the run folder may also be an argument: named once
            return path

    args = list(job.args)
    for index, arg in enumerate(job.args[:-1]):
        if arg in job.path_options:
            args[index + 1] = mapped(job.args[index + 1], job.path_options[arg])
    run_dir = mapped(str(job.run_dir), "the run folder")
    if missing:
        raise PathsNotVisible(target, missing)
    config = args[args.index("--config") + 1] if "--config" in args[:-1] else ""
    return MappedJob(args, run_dir, Path(job.run_dir), config)


def target_python(target: Target) -> str:
    """The interpreter command for the trainer on ``target``."""
    if isinstance(target, LocalTarget) and not target.python:
        return commands.join([trainer_python()])  # not sys.executable: in a bundle that is the app
    return target.python


def trainer_argv(target: Target, mapped: MappedJob) -> list[str]:
    """``python -m trainer <args>`` with ``target``'s interpreter."""
    return commands.python_argv(target_python(target), *mapped.args)


def check_trainer_runs(shell: Shell, target: Target) -> None:
    """Raise LaunchFailed, saying what to do, when ``python -m trainer`` does not run on ``target``.

    A quick check for commands that start without a preflight (the preflight runs ``doctor``).
    """
    python = target_python(target)
    check = shell.run(commands.python_argv(python, "--version"), timeout=60)
    if not check.ok:
        detail = (check.stderr or check.stdout).strip().splitlines()
        raise LaunchFailed(f"the trainer does not run on {target.name} with {python or 'python3'!r}"
                           f"{': ' + detail[-1] if detail else ''}", INSTALL_HINT)


def start_with_shell(shell: Shell, target: Target, mapped: MappedJob, argv: list[str] | None = None,
                     log_name: str = LOG_FILE, env: Mapping[str, str] | None = None) -> int:
    """Start the command detached through ``shell`` (``setsid nohup``); returns the trainer's pid.

    ``argv`` replaces the plain ``python -m trainer ...`` (torchrun around it, for one node of a
    multi-node run), ``log_name`` the run folder's file for its output, ``env`` adds variables.
    """
    script = commands.detached_launch(argv or trainer_argv(target, mapped), mapped.run_dir, log_name, env)
    result = shell.run_script(script, timeout=60)
    pid_text = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    if result.returncode == commands.EXIT_NO_RUN_DIR:
        raise LaunchFailed(f"{shell.host} does not see the run folder at {mapped.run_dir}",
                           f"check the path mappings of {target.name} in the Targets panel, or run the preflight")
    if not result.ok or not pid_text.isdigit():
        detail = (result.stderr or result.stdout).strip()[-500:] or f"exit {result.returncode}"
        raise LaunchFailed(f"could not start the trainer on {shell.host}: {detail}",
                           "run the preflight to see what is missing")
    return int(pid_text)


def start_here(target: LocalTarget, mapped: MappedJob) -> tuple[int, str]:
    """Start the command on this machine, detached (it outlives the app); returns (pid, host)."""
    shell = LocalShell()
    if sys.platform != "win32":
        return start_with_shell(shell, target, mapped), shell.host
    # Windows has no setsid: a detached process in a new process group outlives the app.
    import subprocess
    flags = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
    with open(Path(mapped.local_run_dir) / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(trainer_argv(target, mapped), cwd=mapped.local_run_dir, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, creationflags=flags, close_fds=True)
    return proc.pid, shell.host


def record_start(target: Target, mapped: MappedJob, *, pid: int, host: str, launch: str, started: StartMoment,
                 vm: str = "", vcenter: str = "", extra: Mapping[str, Any] | None = None) -> RunInfo:
    """Write ``run.json`` for a command just started (``launch``: subprocess | ssh | guest_ops)."""
    info = RunInfo(target_kind=target.kind, target_name=target.name, host=host, pid=pid,
                   command=trainer_argv(target, mapped), started_at=started.at, app_version=APP_VERSION,
                   launch=launch, run_dir=mapped.run_dir, config=mapped.config, vm=vm, vcenter=vcenter,
                   extra=dict(extra or {}), heartbeat_before=started.heartbeat_before)
    write_run_info(mapped.local_run_dir, info)
    return info

