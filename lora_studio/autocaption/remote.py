"""Starting and signalling a label job on a saved target (SSH host, VM, a local interpreter).

Blocking and Qt-free: :class:`.watch.RunFolderProcess` calls these from worker threads.
The job's paths are the desktop's; the target sees the shared storage elsewhere, so the
dataset, model, run folder and image list are rewritten through the target's
:class:`~lora_studio.targets.pathmap.PathMapper` before the command line is built. The
trainer starts detached (``setsid nohup``, output into the run folder's ``train.log``), so
closing the app or losing the connection does not stop it; ``run.json`` records where it
runs, which is what liveness checks and kills use later, even from a restarted app.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lora_studio import __version__ as APP_VERSION

from ..targets import commands
from ..targets.api import TargetContext, open_shell, run_control
from ..targets.control import ProcessControl
from ..targets.errors import TargetError, UntrustedHostKey
from ..targets.launch import target_python
from ..targets.model import LocalTarget, SshTarget, Target
from ..targets.prepare import PreparedRun
from ..targets.runinfo import RunInfo, write_run_info

# The label options that hold paths, and how a message names each one.
PATH_OPTIONS = {"--input": "the dataset folder", "--model": "the model folder", "--run-dir": "the job's run folder",
                "--images": "the image list"}
EXIT_NO_RUN_DIR = 97  # commands.detached_launch: `cd` into the run folder failed
INSTALL_HINT = ("install the trainer from the Targets panel (Install trainer from wheel…), "
                "or set the Python that has it in the target's settings")


class LabelStartError(Exception):
    """The job could not be started; ``problems`` are full sentences, each with what to do."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))  # one a line: the worker passes on the message only
        self.problems = problems


@dataclass(frozen=True)
class Started:
    """A job started on a target: its launch record (also in ``run.json``)."""

    info: RunInfo


def _sentence(exc: TargetError) -> str:
    return f"{exc.message} — {exc.hint}" if exc.hint else exc.message


def map_label_args(args: list[str], target: Target) -> list[str]:
    """``args`` with every path option as ``target`` sees it; all unmapped paths are reported at once."""
    mapper, mapped, problems = target.mapper(), list(args), []
    for index, arg in enumerate(args[:-1]):
        what = PATH_OPTIONS.get(arg)
        if what is None:
            continue
        try:
            mapped[index + 1] = mapper.to_target(args[index + 1], what=what)
        except TargetError:
            problems.append(f"{target.name} cannot see {what}: {args[index + 1]}")
    if problems:
        seen = ", ".join(m.local for m in target.mapper().mappings)
        problems.append(f"{target.name} sees only {seen} — add a path mapping for the missing folders "
                        f"(Targets panel, {target.name}, path mappings), or move them into the shared workspace")
        raise LabelStartError(problems)
    return mapped


def option_value(args: list[str], option: str) -> str:
    """The value after ``option`` in ``args`` ('' when absent)."""
    return args[args.index(option) + 1] if option in args[:-1] else ""


def _launch_kind(target: Target) -> str:
    if isinstance(target, LocalTarget):
        return "subprocess"
    if isinstance(target, SshTarget):
        return "ssh"
    return "guest_ops" if target.launch == "guest_ops" else "ssh"


def start_label_job(target: Target, ctx: TargetContext, label_args: list[str], local_run_dir: Path) -> Started:
    """Check the trainer on ``target``, start ``python -m trainer label`` there detached, write run.json.

    Blocking (an SSH login and two commands): call it from a worker thread. Raises
    :class:`LabelStartError` with what to do for every expected failure.
    """
    mapped = map_label_args(label_args, target)
    target_run_dir = option_value(mapped, "--run-dir")
    python = target_python(target)
    argv = commands.python_argv(python, "label", *mapped)
    # Guest Operations need a shared scratch folder for a command's output: the run folder has one.
    prepared = PreparedRun(Path(), local_run_dir, target_run_dir, "", values={}, local_paths={})
    try:
        with open_shell(target, ctx, prepared) as shell:
            check = shell.run(commands.python_argv(python, "--version"), timeout=60)
            if not check.ok:
                detail = (check.stderr or check.stdout).strip().splitlines()
                raise LabelStartError([f"the trainer does not run on {target.name} with {python or 'python3'!r}"
                                       f"{': ' + detail[-1] if detail else ''} — {INSTALL_HINT}"])
            started = time.time()
            result = shell.run_script(commands.detached_launch(argv, target_run_dir), timeout=60)
            pid_text = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
            if result.returncode == EXIT_NO_RUN_DIR:
                raise LabelStartError([f"{target.name} does not see the job's run folder at {target_run_dir} — "
                                       f"check the path mappings of {target.name} in the Targets panel"])
            if not result.ok or not pid_text.isdigit():
                detail = (result.stderr or result.stdout).strip()[-500:] or f"exit {result.returncode}"
                raise LabelStartError([f"could not start the trainer on {target.name}: {detail}"])
            host = shell.host
    except UntrustedHostKey as exc:
        raise LabelStartError([f"{exc.message} — test {target.name} in the Targets panel and trust its host key "
                               "there first"]) from None
    except TargetError as exc:
        raise LabelStartError([_sentence(exc)]) from None
    info = RunInfo(target_kind=target.kind, target_name=target.name, host=host, pid=int(pid_text), command=argv,
                   started_at=started, app_version=APP_VERSION, launch=_launch_kind(target), run_dir=target_run_dir,
                   config="", vm=getattr(target, "vm", ""), vcenter=getattr(target, "vcenter", ""),
                   extra={"kind": "label"})
    write_run_info(local_run_dir, info)
    return Started(info)


def signal_job(run_dir: Path, ctx: TargetContext, name: str) -> None:
    """Send TERM or KILL to the job's trainer over the channel that started it (from ``run.json``)."""
    with run_control(run_dir, ctx) as control:
        control.signal(name)


class LivenessProbe:
    """Whether the job's trainer still runs; keeps one connection for all the checks of a job.

    Used from worker threads, one check at a time (the lock makes sure of it).
    """

    def __init__(self, run_dir: Path, ctx: TargetContext) -> None:
        self.run_dir, self.ctx = run_dir, ctx
        self._lock = threading.Lock()
        self._stack: contextlib.ExitStack | None = None
        self._control: ProcessControl | None = None

    def alive(self) -> bool:
        """True while the process exists; raises TargetError when the target cannot be asked."""
        with self._lock:
            if self._control is None:
                stack = contextlib.ExitStack()
                self._control = stack.enter_context(run_control(self.run_dir, self.ctx))
                self._stack = stack
            try:
                return self._control.is_alive()
            except TargetError:
                self._close()  # reconnect next time
                raise

    def _close(self) -> None:
        if self._stack is not None:
            self._stack.close()
        self._stack, self._control = None, None

    def close(self) -> None:
        """Release the connection (the trainer is not affected)."""
        with self._lock:
            self._close()
