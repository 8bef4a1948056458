"""What applying a job's results would do to the captions in the grid *now* (pure Python).

The job records what it generated for each image (``captions.jsonl``). The merge with the
existing caption is redone here against the session's current captions, not the captions
the job saw when it started: a caption typed in the grid while the job ran is then kept by
"fill", and "append"/"prepend" add to the caption as it is now. Only "replace" overwrites.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from trainer.labeling.merge import merge_caption


class Outcome(str, enum.Enum):
    """What happens to one image's caption on apply."""

    CHANGE = "change"
    KEPT = "kept"  # fill: the image has a caption now (typed while the job ran, or unsaved)
    SAME = "same"  # nothing new to add, or the model said nothing
    ERROR = "error"  # unreadable image, skipped by the job
    GONE = "gone"  # the image is no longer in the dataset


@dataclass(frozen=True)
class PreviewRow:
    """One image in the preview: its caption now and after applying."""

    rel: str
    now: str
    after: str
    outcome: Outcome
    note: str = ""  # why it does not change (error message and hint, ...)


@dataclass
class ApplyPlan:
    """Every row, and the changes to apply as one undo step."""

    rows: list[PreviewRow] = field(default_factory=list)
    changes: dict[str, tuple[str, str]] = field(default_factory=dict)  # rel -> (now, after)

    def count(self, outcome: Outcome) -> int:
        """How many rows have ``outcome``."""
        return sum(1 for row in self.rows if row.outcome is outcome)

    def summary(self) -> str:
        """One line of counts for the dialog, e.g. '12 captions will change · 1 kept (…)'."""
        changed = len(self.changes)
        parts = [f"{changed:,} caption{'s' if changed != 1 else ''} will change"]
        for outcome, text in ((Outcome.KEPT, "kept (they have a caption now)"),
                              (Outcome.SAME, "unchanged"), (Outcome.ERROR, "unreadable, skipped"),
                              (Outcome.GONE, "no longer in the dataset")):
            if self.count(outcome):
                parts.append(f"{self.count(outcome):,} {text}")
        return " · ".join(parts)


def undo_name(count: int) -> str:
    """The undo step's name: 'Auto-caption 12 images'."""
    return f"Auto-caption {count:,} image{'s' if count != 1 else ''}"


def plan_row(record: Mapping[str, Any], captions: Mapping[str, str], mode: str, trigger: str) -> PreviewRow:
    """One ``captions.jsonl`` record against the current captions."""
    rel = str(record.get("file", ""))
    if rel not in captions:
        return PreviewRow(rel, "", "", Outcome.GONE, "removed from the dataset since the job started")
    now = captions[rel]
    if record.get("error"):
        note = str(record["error"]) + (f" ({record['hint']})" if record.get("hint") else "")
        return PreviewRow(rel, now, now, Outcome.ERROR, note)
    generated = [str(part) for part in record.get("generated") or []]
    after = merge_caption(now, generated, mode, trigger or None) if generated else None
    if after is None and mode == "fill" and now.strip():
        return PreviewRow(rel, now, now, Outcome.KEPT, "has a caption now; fill never overwrites it")
    if after is None or after == now:
        return PreviewRow(rel, now, now, Outcome.SAME, "nothing new to add" if generated else "empty caption")
    return PreviewRow(rel, now, after, Outcome.CHANGE)


def plan_changes(records: Iterable[Mapping[str, Any]], captions: Mapping[str, str], mode: str,
                 trigger: str = "") -> ApplyPlan:
    """The plan for all records (a later record for the same image wins)."""
    by_rel: dict[str, PreviewRow] = {}
    for record in records:
        row = plan_row(record, captions, mode, trigger)
        by_rel[row.rel] = row
    plan = ApplyPlan(rows=list(by_rel.values()))
    plan.changes = {row.rel: (row.now, row.after) for row in plan.rows if row.outcome is Outcome.CHANGE}
    return plan
