"""A run's metric series in growable numpy arrays, fed incrementally from `metrics.jsonl`.

Built for a million points: each refresh reads only the new bytes (trainer.rundir.JsonlTail),
appends in amortised O(1), and keeps the exponential moving average up to date for the new
points only. A resume rewrites steps after its checkpoint: when a step arrives that is not
beyond the last one, the series is cut back to just before it (newest line per step wins).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from trainer.rundir import JsonlTail

FIELDS = ("step", "epoch", "loss", "lr", "time", "samples_per_s", "mem_gb")


class MetricSeries:
    """Columns of one run's metrics: `column(name)` is a numpy view of the valid points."""

    def __init__(self, path: Path | str, smoothing: float = 0.9) -> None:
        self.tail = JsonlTail(Path(path))
        self._data = {name: np.empty(1024, dtype=np.float64) for name in FIELDS}
        self._ema = np.empty(1024, dtype=np.float64)
        self.count = 0
        self.smoothing = smoothing
        self.bytes_read = 0  # of the last refresh, for the benchmark

    def __len__(self) -> int:
        return self.count

    def column(self, name: str) -> np.ndarray:
        """The valid part of a column (a view: do not keep it across refreshes)."""
        return self._data[name][:self.count]

    @property
    def ema(self) -> np.ndarray:
        """The smoothed loss (exponential moving average with the current smoothing)."""
        return self._ema[:self.count]

    def set_smoothing(self, smoothing: float) -> None:
        """Change the EMA weight (0 = raw) and recompute it over all points."""
        self.smoothing = min(max(smoothing, 0.0), 0.999)
        self._recompute_ema(0)

    def refresh(self) -> int:
        """Read new lines; returns how many points arrived (after any cut for a resume)."""
        before = self.tail.offset
        records = self.tail.read_new()
        self.bytes_read = self.tail.offset - before
        if not records:
            return 0
        first_changed = self.count
        for record in records:
            step = record.get("step")
            if not isinstance(step, (int, float)):
                continue
            if self.count and step <= self._data["step"][self.count - 1]:
                # A resumed run writes these steps again: its lines replace the old ones.
                self.count = int(np.searchsorted(self._data["step"][:self.count], step, side="left"))
                first_changed = min(first_changed, self.count)
            self._append(record)
        self._recompute_ema(first_changed)
        return len(records)

    def _append(self, record: dict) -> None:
        if self.count == len(self._ema):
            for name in FIELDS:
                self._data[name] = np.resize(self._data[name], self.count * 2)
            self._ema = np.resize(self._ema, self.count * 2)
        for name in FIELDS:
            value = record.get(name)
            self._data[name][self.count] = float(value) if isinstance(value, (int, float)) else math.nan
        self.count += 1

    def _recompute_ema(self, start: int) -> None:
        loss = self._data["loss"]
        weight = self.smoothing
        previous = self._ema[start - 1] if start > 0 else math.nan
        # A Python loop over only the new points: a refresh brings a few, a first load
        # of a million takes about half a second once.
        for i in range(start, self.count):
            value = loss[i]
            if math.isnan(previous):
                previous = value
            elif not math.isnan(value):
                previous = weight * previous + (1 - weight) * value
            self._ema[i] = previous

    def to_csv(self) -> str:
        """All points as CSV text (for export)."""
        lines = [",".join(FIELDS + ("loss_smoothed",))]
        columns = [self.column(name) for name in FIELDS] + [self.ema]
        for row in zip(*columns):
            lines.append(",".join("" if math.isnan(v) else (str(int(v)) if i == 0 else repr(float(v)))
                                  for i, v in enumerate(row)))
        return "\n".join(lines) + "\n"


def read_events(path: Path | str) -> list[dict]:
    """Every complete event of a run (small files: read whole)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return []
    events = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events
