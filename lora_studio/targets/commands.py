"""Shell command lines for POSIX targets, every part quoted with ``shlex.quote``.

A file or folder name is data, never code: ``a b; touch PWNED`` or ``$(touch PWNED)`` in
a run folder's name must reach the trainer as that name. So nothing here pastes a value
into a command line without ``shlex.quote``; pids are formatted from ints.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from typing import Mapping, Sequence

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The exit code of a launch script whose ``cd`` into the run folder failed: the target does
# not see the folder there (a wrong path mapping). Chosen outside the trainer's own codes.
EXIT_NO_RUN_DIR = 97


def join(argv: Sequence[str]) -> str:
    """A command line that runs ``argv`` exactly (each argument quoted)."""
    if not argv:
        raise ValueError("empty command")
    return " ".join(shlex.quote(str(a)) for a in argv)


def python_argv(python: str, *args: str) -> list[str]:
    """``python -m trainer ARGS`` for a target whose interpreter is ``python``.

    ``python`` is read the way a shell reads it, so it may carry options
    (``python3 -X utf8``); a path with spaces must be quoted (``'/opt/my venv/bin/python'``).
    """
    parts = shlex.split(python) if python.strip() else ["python3"]
    return [*parts, "-m", "trainer", *args]


def env_prefix(env: Mapping[str, str] | None) -> str:
    """``NAME=value`` assignments for the front of a command line (names checked, values quoted)."""
    out = []
    for name, value in (env or {}).items():
        if not _ENV_NAME.match(name):
            raise ValueError(f"{name!r} is not a valid environment variable name")
        out.append(f"{name}={shlex.quote(str(value))}")
    return " ".join(out) + (" " if out else "")


def detached_launch(argv: Sequence[str], run_dir: str, log_name: str = "train.log",
                    env: Mapping[str, str] | None = None) -> str:
    """A ``/bin/sh`` script that starts ``argv`` in ``run_dir`` detached and prints its pid.

    ``setsid`` puts the trainer in a session of its own and ``nohup`` makes it ignore the
    hang-up, so closing the SSH connection (or the laptop) does not stop training. stdin
    comes from /dev/null and output is appended to the run's log (append: a resumed run
    keeps the earlier log). ``cd`` is its own statement: with ``cd && cmd &`` the shell
    would background a subshell and ``$!`` would be that subshell's pid, not the trainer's.
    In a non-interactive shell the background child is no group leader, so setsid and
    nohup exec in place and ``$!`` is the trainer's own pid.
    """
    log = posixpath.join(run_dir, log_name)
    return (f"cd {shlex.quote(run_dir)} || exit {EXIT_NO_RUN_DIR}; "
            f"{env_prefix(env)}setsid nohup {join(argv)} >> {shlex.quote(log)} 2>&1 < /dev/null & echo $!")


def exec_in_run_dir(argv: Sequence[str], run_dir: str, log_name: str = "train.log") -> str:
    """A bash script that becomes ``argv`` (``exec``, same pid) in ``run_dir`` with output in its log.

    For Guest Operations: VMware Tools starts the program itself, detached from any
    session, and reports that pid; ``exec`` keeps it the trainer's pid.
    """
    log = posixpath.join(run_dir, log_name)
    return (f"cd {shlex.quote(run_dir)} || exit {EXIT_NO_RUN_DIR}; "
            f"exec {join(argv)} >> {shlex.quote(log)} 2>&1 < /dev/null")


def process_probe(pid: int) -> str:
    """Prints ``ALIVE`` and the process's command line, or ``GONE``."""
    pid = int(pid)
    # A zombie (exited, not yet reaped by its parent) answers kill -0 but is gone: check
    # the state letter of /proc/PID/stat (after the ")" that ends the command name).
    return (f"if kill -0 {pid} 2>/dev/null && [ \"$(sed 's/.*) //' /proc/{pid}/stat 2>/dev/null | cut -c1)\" != Z ]; "
            f"then echo ALIVE; tr '\\0' ' ' < /proc/{pid}/cmdline 2>/dev/null; echo; else echo GONE; fi")


def signal_process(pid: int, signal_name: str) -> str:
    """Send ``signal_name`` (TERM or KILL) to ``pid``."""
    if signal_name not in ("TERM", "KILL", "INT"):
        raise ValueError(f"unsupported signal {signal_name!r}")
    return f"kill -{signal_name} {int(pid)}"


def kill_with_children(pid: int) -> str:
    """SIGKILL ``pid``'s children, then ``pid`` (torchrun starts its workers in sessions of their own,
    so killing torchrun alone would leave them training)."""
    pid = int(pid)
    # /proc/N/stat: "N (name) S PPID ..."; the name may hold spaces, so read after the last ") ".
    return (f"for s in /proc/[0-9]*/stat; do read -r l < \"$s\" 2>/dev/null || continue; r=${{l##*) }}; "
            f"set -- $r; if [ \"$2\" = {pid} ]; then c=${{s%/stat}}; kill -KILL \"${{c#/proc/}}\" 2>/dev/null; fi; "
            f"done; kill -KILL {pid}")


def parse_probe(output: str) -> tuple[bool, str]:
    """(alive, command line) from the output of :func:`process_probe`."""
    lines = output.splitlines()
    if not lines or lines[0].strip() != "ALIVE":
        return False, ""
    return True, (lines[1] if len(lines) > 1 else "").strip()
