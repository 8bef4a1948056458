"""A run's automatic recovery: whether it is on, how often it may be tried, when a silent run counts as dead.

Kept in the run folder (``recovery.json``), so every desk watching the run agrees; the attempts
made so far are the ``recovery`` events of its ``events.jsonl``, written by whichever desk made them.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trainer.fsutil import atomic_write_text
from trainer.rundir import EVENTS_FILE, STALE_AFTER_S, JsonlTail

SETTINGS_FILE = "recovery.json"
RECOVERY_EVENT = "recovery"


@dataclass
class RecoverySettings:
    """Per-run choice. ``stale_after_s``: a heartbeat this old (with the trainer gone) makes the run lost."""

    enabled: bool = False
    max_attempts: int = 3
    stale_after_s: float = STALE_AFTER_S


def load_settings(run_dir: Path) -> RecoverySettings:
    """The run's recovery settings (off when it has none, or they cannot be read)."""
    try:
        data = json.loads((Path(run_dir) / SETTINGS_FILE).read_text(encoding="utf-8"))
        return RecoverySettings(bool(data.get("enabled")), int(data.get("max_attempts", 3)),
                                max(1.0, float(data.get("stale_after_s", STALE_AFTER_S))))
    except (OSError, ValueError, TypeError, AttributeError):
        return RecoverySettings()


def save_settings(run_dir: Path, settings: RecoverySettings) -> None:
    """Write the run's recovery settings atomically."""
    atomic_write_text(Path(run_dir) / SETTINGS_FILE, json.dumps(asdict(settings)) + "\n")


def recovery_events(run_dir: Path) -> list[dict[str, Any]]:
    """The run's recovery attempts, oldest first (each a ``recovery`` event)."""
    return [e for e in JsonlTail(Path(run_dir) / EVENTS_FILE).read_new() if e.get("kind") == RECOVERY_EVENT]


def attempts(run_dir: Path) -> int:
    """Recoveries already made for this run (from its events)."""
    return len(recovery_events(run_dir))


def record_event(run_dir: Path, kind: str, **fields: Any) -> None:
    """Append an event for a run whose trainer is not running (recovery attempts, their failures).

    One ``write`` of one line in append mode: the trainer, if one started meanwhile, appends its
    own lines the same way, and readers skip a line until it is complete.
    """
    line = json.dumps({"time": time.time(), "kind": kind, **fields}, ensure_ascii=False) + "\n"
    with open(Path(run_dir) / EVENTS_FILE, "a", encoding="utf-8") as handle:
        handle.write(line)
