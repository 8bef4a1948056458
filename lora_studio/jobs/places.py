"""Where a job can run: this computer, then every saved target of the Targets panel.

A :class:`Place` is what a "Run on" list holds: the target, how the list names it, and the
context that starting and following a job there needs (the saved settings, known_hosts).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..targets.api import TargetContext
from ..targets.errors import TargetError
from ..targets.model import LocalTarget, SshTarget, Target, TargetSettings

THIS_COMPUTER = "This computer"


@dataclass(frozen=True)
class Place:
    """A target to start jobs on, as a "Run on" list shows it."""

    name: str               # the list's text: the target's name and where it is
    target: Target
    context: TargetContext
    target_name: str = ""   # the saved target's name; "" for this computer's own trainer


def place_label(target: Target) -> str:
    """How a "Run on" list names a saved target: its name and where it is."""
    if isinstance(target, SshTarget):
        return f"{target.name} (SSH {target.user}@{target.host})"
    if isinstance(target, LocalTarget):
        return f"{target.name} (this computer, {target.python or 'the app’s Python'})"
    if target.kind == "ray":
        return f"{target.name} (Ray cluster {target.address})"
    return f"{target.name} (VM {target.vm})"


def job_context(context: Callable[[], TargetContext]) -> TargetContext:
    """``context()``; when the saved targets cannot be read, one without them.

    A job on this computer needs no saved target (its liveness and signals go through this
    machine's shell), so it still starts, follows and stops; the Targets panel says why the
    file is unreadable.
    """
    try:
        return context()
    except (TargetError, OSError):
        return TargetContext(TargetSettings(), Path(os.devnull))


def places(context: Callable[[], TargetContext]) -> list[Place]:
    """This computer (the app's own trainer), then every saved target (each checked when a job starts)."""
    ctx = job_context(context)
    found = [Place(THIS_COMPUTER, LocalTarget(name=THIS_COMPUTER), ctx)]
    for target in ctx.settings.targets:
        if isinstance(target, LocalTarget) and not target.python and not target.mappings:
            continue  # the default "This computer" entry: the same as the first place
        found.append(Place(place_label(target), target, ctx, target.name))
    return found
