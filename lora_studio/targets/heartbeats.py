"""Whether a run's heartbeat still changes, as this desk has seen it: liveness without clocks.

A heartbeat is the trainer machine's time, read with this desk's clock. When the two clocks
differ by more than the stale limit (a VM without NTP), a healthy remote run would read as
lost. So every summary of a run also notes when, by this desk's clock, its heartbeat last took
a new value: a heartbeat seen changing within the limit is alive whatever the clocks say.
"""

from __future__ import annotations

import threading
from pathlib import Path


class HeartbeatChanges:
    """When each run's heartbeat was last seen taking a new value (thread-safe: listings run in workers)."""

    def __init__(self) -> None:
        self._seen: dict[Path, tuple[float, float | None]] = {}
        self._lock = threading.Lock()

    def changed_within(self, run_dir: Path, heartbeat: object, now: float, limit_s: float) -> bool:
        """Note ``heartbeat`` as read at ``now``; True when it was seen moving on at most ``limit_s`` ago.

        The first reading of a run proves nothing (no change seen yet): the clocks decide then. Only
        a later heartbeat counts: one that goes back was not written by the run's beating trainer.
        """
        if not isinstance(heartbeat, (int, float)):
            return False
        with self._lock:
            previous = self._seen.get(run_dir)
            if previous is None or heartbeat < previous[0]:
                self._seen[run_dir] = (heartbeat, None)
            elif heartbeat > previous[0]:
                self._seen[run_dir] = (heartbeat, now)
            changed_at = self._seen[run_dir][1]
        return changed_at is not None and now - changed_at <= limit_s


# One for the whole app: any caller's reading (the Runs page, the fleet's passes) is evidence.
SEEN = HeartbeatChanges()
