"""Running commands on a target: one small interface for this machine, SSH and Guest Operations.

Preflight and the launchers speak to a target only through :class:`Shell`, so each check
is written once. Scripts are POSIX ``/bin/sh`` text built by :mod:`.commands`.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Protocol, Sequence

from . import commands


@dataclass(frozen=True)
class CommandResult:
    """What a command returned and printed."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class Shell(Protocol):
    """A way to run commands on a target."""

    host: str

    def run_script(self, script: str, timeout: float = 60.0) -> CommandResult:
        """Run a /bin/sh script and wait for it."""

    def run(self, argv: Sequence[str], timeout: float = 60.0) -> CommandResult:
        """Run one command (each argument passed exactly) and wait for it."""

    def close(self) -> None:
        """Release the connection."""


class LocalShell:
    """This machine (POSIX): scripts through /bin/sh, commands without a shell."""

    def __init__(self) -> None:
        import socket
        self.host = socket.gethostname()

    def run_script(self, script: str, timeout: float = 60.0) -> CommandResult:
        return self.run(["/bin/sh", "-c", script], timeout)

    def run(self, argv: Sequence[str], timeout: float = 60.0) -> CommandResult:
        try:
            done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL, errors="replace")
        except FileNotFoundError as exc:
            return CommandResult(127, "", str(exc))
        except subprocess.TimeoutExpired:
            return CommandResult(124, "", f"timed out after {timeout:.0f} s: {commands.join(argv)}")
        return CommandResult(done.returncode, done.stdout, done.stderr)

    def close(self) -> None:
        pass
