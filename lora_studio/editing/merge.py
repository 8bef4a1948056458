"""How values read from disk combine with the edits made here: a fresh read of the dataset
after someone else changed it, and the edits a killed session left in its journal. Pure
decisions over plain text; the session (:mod:`.session`) applies them. An edit made on
both sides is never settled here: it becomes a :class:`~.conflicts.Conflict` for the user.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .conflicts import Conflict


@dataclass
class ReloadMerge:
    """What a fresh read of the dataset means for the values edited here."""

    mine_kept: dict[str, str] = field(default_factory=dict)  # edits made here that stay over the fresh read
    conflicts: list[Conflict] = field(default_factory=list)  # changed here and there, differently
    taken: int = 0  # values clean here and changed there: the fresh read's are taken


def merge_reload(fresh: Iterable[tuple[str, str]], saved: Mapping[str, str], mine: Mapping[str, str]) -> ReloadMerge:
    """Merge a fresh read, ``(rel, theirs)`` pairs, with the values here (``mine``) and the
    values last saved or read (``saved``, the base both sides started from); a ``rel`` that
    is not here is left out."""
    merge = ReloadMerge()
    for rel, theirs in fresh:
        if rel not in mine:
            continue
        base = saved.get(rel, "")
        here = mine[rel]
        # The caption module trims what it reads and writes, so compare trimmed text:
        # a trailing space typed here is not a change made elsewhere.
        if theirs == base.strip():
            if here != base:
                merge.mine_kept[rel] = here
        elif here == base:
            merge.taken += 1  # clean here, changed there: take theirs
        elif here.strip() == theirs:
            pass
        else:
            merge.conflicts.append(Conflict(rel, base, here, theirs))
            merge.mine_kept[rel] = here
    return merge


def sort_recovered(changes: Mapping[str, tuple[str, str]],
                   on_disk: Mapping[str, str]) -> tuple[dict[str, str], list[Conflict]]:
    """Split a journal's ``rel -> (base, new)`` edits into those to take again and conflicts.

    An edit is taken when the file on disk still holds its base or already its value;
    otherwise the file changed since, and the edit becomes a conflict. A ``rel`` that is
    no longer in the dataset is dropped.
    """
    take: dict[str, str] = {}
    conflicts: list[Conflict] = []
    for rel, (base, new) in changes.items():
        if rel not in on_disk:
            continue
        disk = on_disk[rel]
        if disk in (base, new):
            take[rel] = new
        else:
            conflicts.append(Conflict(rel, base, new, disk))
    return take, conflicts
