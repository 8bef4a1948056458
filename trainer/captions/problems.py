"""What the caption readers report: problems a user can fix, and what a read found."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

# The shared problem type: the caption readers' findings are the dataset scan's and the app's too.
from trainer.problems import Problem

__all__ = ["CaptionFileError", "CaptionReadResult", "Problem"]


class CaptionFileError(ValueError):
    """A caption file cannot be written (or converted) without losing what is in it."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class CaptionReadResult:
    """Everything a reader learned: the scan uses more than the captions themselves."""

    captions: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    # Line of the row that gave each caption (CSV/JSONL), for messages about that row.
    lines: dict[str, int] = field(default_factory=dict)
    # Images named by rows that were rejected: they already have a problem, so the scan
    # does not report them a second time as "has no caption".
    rejected: set[str] = field(default_factory=set)
    # False when the file as a whole could not be read (missing, not UTF-8, no header):
    # then every image lacks a caption for one reason that is already reported.
    readable: bool = True
    source: Path | None = None
