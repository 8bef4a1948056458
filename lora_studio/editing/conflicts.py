"""Captions edited here and changed on disk by someone else at the same time."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..tags import join_tags, split_tags


class Choice(str, Enum):
    """How to settle one conflict."""

    MINE = "mine"
    THEIRS = "theirs"
    MERGE = "merge"


@dataclass(frozen=True)
class Conflict:
    """One image whose caption differs here (``mine``) and on disk (``theirs``)."""

    rel: str
    base: str  # the caption both sides started from
    mine: str
    theirs: str

    def merged(self) -> str:
        """My tags followed by their tags that I do not have (no tag is lost)."""
        mine = split_tags(self.mine)
        return join_tags([*mine, *(t for t in dict.fromkeys(split_tags(self.theirs)) if t not in mine)])

    def resolved(self, choice: Choice) -> str:
        """The caption after ``choice``."""
        choice = Choice(choice)
        if choice is Choice.THEIRS:
            return self.theirs
        if choice is Choice.MERGE:
            return self.merged()
        return self.mine
