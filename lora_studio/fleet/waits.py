"""What a queued run waits for, said per target: briefly for a table cell, fully for a note."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Wait:
    """Why one target cannot take a run now."""

    target: str     # the target (or, for another desk's own computer, that desk)
    short: str      # "busy", "GPU too small": for a table cell
    long: str       # "busy: runs cats; next: dogs", "its GPU has 8 GiB, this run needs ~12.4 GiB"

    def line(self) -> str:
        """``gpu-01: busy: runs cats``: one line of the full account."""
        return f"{self.target}: {self.long}"


def waits_text(waits: Sequence[Wait]) -> str:
    """What a run waits for in one line: one target in full, several briefly.

    ``gpu-01 (busy: runs cats)``; ``gpu-01 (busy), gpu-02 (GPU too small)``.
    """
    if not waits:
        return "a target (this desk has none it may use)"
    if len(waits) == 1:
        return f"{waits[0].target} ({waits[0].long})"
    return ", ".join(f"{w.target} ({w.short})" for w in waits)
