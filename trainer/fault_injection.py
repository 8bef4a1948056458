"""Fault injection for the resume tests and the chaos benchmark (unset in normal use)."""

from __future__ import annotations

import os
import signal

KILL_AT_VARIABLE = "LORA_TRAINER_KILL_AT"


def kill_here_if_asked(point: str, step: int) -> None:
    """`LORA_TRAINER_KILL_AT=checkpoint:4` makes the process SIGKILL itself at that point of
    that step, as a power cut would."""
    target = os.environ.get(KILL_AT_VARIABLE)
    if target and target == f"{point}:{step}":
        os.kill(os.getpid(), signal.SIGKILL)
