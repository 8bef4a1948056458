"""Fault injection for the resume tests and the chaos benchmark (unset in normal use)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

KILL_AT_VARIABLE = "LORA_TRAINER_KILL_AT"
HOLD_AT_VARIABLE = "LORA_TRAINER_HOLD_AT"
# A file that may be created once: with it, the kill happens only in the process that creates it.
# A process started again by an elastic launcher (torchrun) inherits the same environment, and
# would otherwise kill itself again at the same step, each time, until the launcher gives up.
KILL_ONCE_VARIABLE = "LORA_TRAINER_KILL_ONCE"


def kill_here_if_asked(point: str, step: int) -> None:
    """`LORA_TRAINER_KILL_AT=checkpoint:4` makes the process SIGKILL itself at that point of
    that step, as a power cut would (with `LORA_TRAINER_KILL_ONCE=FILE`: only the first time)."""
    target = os.environ.get(KILL_AT_VARIABLE)
    if not target or target != f"{point}:{step}":
        return
    once = os.environ.get(KILL_ONCE_VARIABLE)
    if once:
        try:
            os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return  # killed once already
    os.kill(os.getpid(), signal.SIGKILL)


def hold_here_if_asked(point: str, step: int, released: Callable[[], bool]) -> None:
    """`LORA_TRAINER_HOLD_AT=step:1` makes the process wait after that step until ``released()``
    says a stop was asked for (STOP file, SIGTERM): a test stops a run at a known step instead of
    racing a running one. One process only: the other ranks of a run never see the STOP file."""
    if os.environ.get(HOLD_AT_VARIABLE) == f"{point}:{step}":
        while not released():
            time.sleep(0.02)
