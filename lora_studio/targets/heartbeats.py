"""How old a run's heartbeat is by this desk's own clock: liveness that does not trust clocks to agree.

A heartbeat is the trainer machine's time. Read with this desk's clock it is only right when
the two clocks agree; a VM without NTP makes a healthy run look lost (its clock behind) or a
dead one look alive for longer (its clock ahead). So every summary of a run notes when, by
this desk's clock, its heartbeat was first seen with its current value: once the desk has seen
it move on, the run's age is the time since then (never more than the truth: the desk sees a
beat only after it was written), and the heartbeat minus that moment is how far the trainer
machine's clock is off. Before the first move only the clocks can tell.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Beat:
    """What the desk knows of a run's heartbeat once it has seen it move on."""

    age_s: float           # since this desk first saw the current heartbeat
    clock_offset_s: float  # the trainer machine's clock minus this desk's, less up to one look's delay


class HeartbeatChanges:
    """When each run's heartbeat was last seen taking a later value (thread-safe: listings run in workers)."""

    def __init__(self) -> None:
        self._seen: dict[Path, tuple[float, float | None]] = {}  # run -> (heartbeat, desk time it was first seen)
        self._lock = threading.Lock()

    def look(self, run_dir: Path, heartbeat: object, now: float) -> Beat | None:
        """Note ``heartbeat`` as read at ``now``; what the desk knows once it has seen it move on, else None.

        Only a later heartbeat counts: one that goes back was not written by the run's beating
        trainer (another writer, a restored file) and starts the evidence over.
        """
        if not isinstance(heartbeat, (int, float)):
            return None
        with self._lock:
            previous = self._seen.get(run_dir)
            if previous is None or heartbeat < previous[0]:
                self._seen[run_dir] = (heartbeat, None)
            elif heartbeat > previous[0]:
                self._seen[run_dir] = (heartbeat, now)
            seen_at = self._seen[run_dir][1]
        if seen_at is None:
            return None
        return Beat(max(0.0, now - seen_at), heartbeat - seen_at)


# One for the whole app: any caller's look (the Runs page, the fleet's passes) is evidence.
SEEN = HeartbeatChanges()
