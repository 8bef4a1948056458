"""Checking on and signalling a launched trainer, whatever channel reaches its machine."""

from __future__ import annotations

from typing import Callable, Protocol

from . import commands
from .errors import ConnectionFailed, TargetError
from .shell import Shell


class ProcessControl(Protocol):
    """Liveness and signals for one trainer process."""

    def is_alive(self) -> bool:
        """True while the trainer process exists."""

    def signal(self, name: str) -> None:
        """Send TERM or KILL to the trainer."""


class ShellProcessControl:
    """A trainer reached through a :class:`Shell` (this machine or SSH).

    The shell is opened on first use and kept for the polls of a stop; a dropped
    connection is reopened once per call, so a network blip does not fail the stop.
    """

    def __init__(self, open_shell: Callable[[], Shell], pid: int, expect: str = "trainer") -> None:
        self.open_shell, self.pid, self.expect = open_shell, int(pid), expect
        self._shell: Shell | None = None

    def _run(self, script: str) -> tuple[int, str, str]:
        for attempt in (1, 2):
            if self._shell is None:
                self._shell = self.open_shell()
            try:
                result = self._shell.run_script(script, timeout=30)
                return result.returncode, result.stdout, result.stderr
            except ConnectionFailed:
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the kept shell (the trainer is not affected)."""
        if self._shell is not None:
            self._shell.close()
            self._shell = None

    def is_alive(self) -> bool:
        _, out, _ = self._run(commands.process_probe(self.pid))
        alive, cmdline = commands.parse_probe(out)
        # The pid may have been reused by another program after the trainer ended.
        return alive and (not cmdline or self.expect in cmdline)

    def signal(self, name: str) -> None:
        code, _, err = self._run(commands.signal_process(self.pid, name))
        if code != 0 and self.is_alive():
            raise TargetError(f"could not send SIG{name} to process {self.pid}: {err.strip()}",
                              "the trainer may run as another user; stop it on the machine itself")
