"""``lost.json``: a desk's finding that a run's trainer is gone although its heartbeat is still fresh.

A trainer whose VM vCenter reports powered off cannot write anything any more, but its last
heartbeat stays fresh for up to a minute; every reader would call the run ``training`` until
then, and a restart would be refused as "still running". The desk that found out writes this
file into the run folder, naming the trainer process it speaks of (host, pid and the time that
process started, from ``status.json``), so that every desk reads the run as ``lost`` at once.
The mark speaks only of that process: a trainer started again writes another pid and start
time into ``status.json``, and the old mark no longer applies to it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from trainer.fsutil import atomic_write_text

LOST_FILE = "lost.json"


def _process_of(status: dict[str, Any]) -> dict[str, Any]:
    """What names one trainer process in ``status.json``."""
    return {"host": status.get("host"), "pid": status.get("pid"), "process_started_at": status.get("process_started_at")}


def mark_lost(run_dir: Path | str, status: dict[str, Any], reason: str, desk: str, now: float | None = None) -> None:
    """Record that the trainer process of ``status`` is gone, and why (atomically)."""
    mark = {"version": 1, "time": time.time() if now is None else now, "desk": desk, "reason": reason,
            **_process_of(status)}
    atomic_write_text(Path(run_dir) / LOST_FILE, json.dumps(mark, ensure_ascii=False) + "\n")


def lost_mark(run_dir: Path | str, status: dict[str, Any]) -> dict[str, Any] | None:
    """The mark that says the trainer of ``status`` is gone; None when there is none, or it speaks of another process."""
    try:
        mark = json.loads((Path(run_dir) / LOST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(mark, dict) or mark.get("pid") is None:
        return None
    same = all(mark.get(key) == value for key, value in _process_of(status).items())
    return mark if same else None
