"""Queued runs in the Runs list: the queue's rows, as the Fleet view last read them, listed with the
run folders, so that a run waiting for a target is found where users look for their runs.

The rows come from the fleet dispatcher's looks at the queue (every few seconds; at once after a
change). A queued run whose folder has started since (the list found its run.json or status.json)
is listed from its files: the folder's own word is newer than any look at the queue.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..fleet import QueueRow
from ..fleet.queue import FAILED
from ..targets.runs import RunSummary

QUEUED_KIND = "queued"


def queued_summary(row: QueueRow) -> RunSummary:
    """One queue row as a Runs-list row: ``queued`` while it waits, ``failed`` when its start from the queue failed."""
    entry, needs = row.entry, row.entry.needs
    where = _where(needs.targets, needs.together)
    error = None
    if entry.state == FAILED:
        problems = [str(p) for p in (entry.error or {}).get("problems") or [] if p]
        error = {"message": f"Its start from the queue failed: {row.status}",
                 "hint": "; ".join([*problems[1:], "fix it, then Queue again"])}
        note = "its start from the queue failed"
    else:
        note = f"#{row.place} in the queue: {row.status}"
    return RunSummary(entry.run_dir, entry.name, FAILED if entry.state == FAILED else "queued", 0, None, None,
                      where, "", None, None, error, None, kind=QUEUED_KIND, note=note)


def with_queue(runs: Sequence[RunSummary], rows: Sequence[QueueRow]) -> list[RunSummary]:
    """The run folders' rows and, before them, the queued runs that have not started (in queue order)."""
    listed = {run.path for run in runs}
    return [queued_summary(row) for row in rows if row.entry.run_dir not in listed] + list(runs)


def _where(targets: tuple[str, ...], together: bool) -> str:
    """The Target cell, short as the list's others (the note names each target): ``gpu-01 +1`` runs over two
    nodes (as a running multi-node run reads), ``gpu-01 or 2 more`` may go to any of three."""
    if len(targets) < 2:
        return targets[0] if targets else "any target"
    more = len(targets) - 1
    return f"{targets[0]} +{more}" if together else f"{targets[0]} or {more} more"
