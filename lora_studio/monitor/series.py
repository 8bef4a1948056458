"""A run's metric series in growable numpy arrays, fed incrementally from `metrics.jsonl`.

Built for a million points: each refresh reads only the new bytes (trainer.rundir.JsonlTail),
appends in amortised O(1), and keeps the exponential moving average up to date for the new
points only. A resume rewrites steps after its checkpoint: when a step arrives that is not
beyond the last one, the series is cut back to just before it (newest line per step wins).
"""

from __future__ import annotations

import bisect
import math
from pathlib import Path

import numpy as np

from trainer.rundir import JsonlTail

FIELDS = ("step", "epoch", "loss", "lr", "time", "samples_per_s", "mem_gb", "tokens_per_s", "eval_loss")


class MetricSeries:
    """Columns of one run's metrics: `column(name)` is a numpy view of the valid points."""

    def __init__(self, path: Path | str, smoothing: float = 0.9) -> None:
        self.tail = JsonlTail(Path(path))
        self._data = {name: np.empty(1024, dtype=np.float64) for name in FIELDS}
        self._ema = np.empty(1024, dtype=np.float64)
        self.count = 0
        self.smoothing = smoothing
        self.bytes_read = 0  # of the last refresh, for the benchmark
        # True while a worker reads the history of a big run: the UI must not refresh it then.
        self.loading = False
        # Running extremes of the loss, kept up to date per point so that the plot can set
        # its range without scanning a million points on every refresh.
        self.loss_min = math.inf
        self.loss_max = -math.inf
        self.decimated = Decimated()
        self.decimated_upto = 0
        # Indices of the points that carry an eval_loss (every eval_steps): the plot draws them
        # without scanning the whole column.
        self._eval_at: list[int] = []

    def __len__(self) -> int:
        return self.count

    def column(self, name: str) -> np.ndarray:
        """The valid part of a column (a view: do not keep it across refreshes)."""
        return self._data[name][:self.count]

    @property
    def ema(self) -> np.ndarray:
        """The smoothed loss (exponential moving average with the current smoothing)."""
        return self._ema[:self.count]

    def eval_indices(self) -> np.ndarray:
        """Indices of the points with an ``eval_loss`` (language-model runs with ``val_size``), in order."""
        return np.asarray(self._eval_at, dtype=np.int64)

    def set_smoothing(self, smoothing: float) -> None:
        """Change the EMA weight (0 = raw) and recompute it over all points."""
        self.smoothing = min(max(smoothing, 0.0), 0.999)
        self.decimated_upto = self.count  # force the bins to be rebuilt with the new curve
        self._recompute_ema(0)

    def refresh(self) -> int:
        """Read new lines; returns how many points arrived (after any cut for a resume)."""
        before = self.tail.offset
        first_changed = self.count
        arrived = 0
        for records in self.tail.iter_new():
            arrived += len(records)
            for record in records:
                step = record.get("step")
                if not isinstance(step, (int, float)):
                    continue
                if self.count and step <= self._data["step"][self.count - 1]:
                    # A resumed run writes these steps again: its lines replace the old ones.
                    self.count = int(np.searchsorted(self._data["step"][:self.count], step, side="left"))
                    del self._eval_at[bisect.bisect_left(self._eval_at, self.count):]
                    first_changed = min(first_changed, self.count)
                    self._recompute_extremes()
                self._append(record)
        self.bytes_read = self.tail.offset - before
        if arrived:
            self._recompute_ema(first_changed)
        return arrived

    def _append(self, record: dict) -> None:
        if self.count == len(self._ema):
            for name in FIELDS:
                self._data[name] = np.resize(self._data[name], self.count * 2)
            self._ema = np.resize(self._ema, self.count * 2)
        for name in FIELDS:
            value = record.get(name)
            self._data[name][self.count] = float(value) if isinstance(value, (int, float)) else math.nan
        if math.isfinite(self._data["eval_loss"][self.count]):
            self._eval_at.append(self.count)
        loss = self._data["loss"][self.count]
        if math.isfinite(loss):
            self.loss_min = min(self.loss_min, loss)
            self.loss_max = max(self.loss_max, loss)
        self.count += 1

    def _recompute_extremes(self) -> None:
        loss = self._data["loss"][:self.count]
        finite = loss[np.isfinite(loss)]
        self.loss_min = float(finite.min()) if len(finite) else math.inf
        self.loss_max = float(finite.max()) if len(finite) else -math.inf

    def _recompute_ema(self, start: int) -> None:
        if start < self.decimated_upto:
            self.decimated = Decimated()  # a resume cut the series: bin it again from the start
            self.decimated_upto = 0
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
        for i in range(self.decimated_upto, self.count):
            self.decimated.add(i, loss[i], self._ema[i])
        self.decimated_upto = self.count

    def to_csv(self) -> str:
        """All points as CSV text (for export)."""
        lines = [",".join(FIELDS + ("loss_smoothed",))]
        columns = [self.column(name) for name in FIELDS] + [self.ema]
        for row in zip(*columns):
            lines.append(",".join("" if math.isnan(v) else (str(int(v)) if i == 0 else repr(float(v)))
                                  for i, v in enumerate(row)))
        return "\n".join(lines) + "\n"


class Decimated:
    """Per-bin min/max of the loss for drawing a whole run at screen resolution.

    Bins hold `size` consecutive points; when there would be more than `max_bins`, pairs of
    bins merge and `size` doubles. Appending is O(1) amortised, so a plot of a million points
    redraws from a few thousand values instead of scanning them all.
    """

    def __init__(self, max_bins: int = 2048) -> None:
        self.max_bins = max_bins  # even, so that bins always merge in whole pairs
        self.size = 1
        self.first: list[int] = []  # index of each bin's first point
        self.low: list[float] = []
        self.high: list[float] = []
        self.last: list[float] = []  # each bin's last smoothed value
        self.filled = 0  # points in the last bin

    def add(self, index: int, value: float, smooth: float) -> None:
        """Put point ``index`` (loss ``value``, smoothed ``smooth``) into its bin."""
        if self.first and self.filled < self.size:
            i = len(self.first) - 1
            if math.isfinite(value):
                self.low[i] = value if not math.isfinite(self.low[i]) else min(self.low[i], value)
                self.high[i] = value if not math.isfinite(self.high[i]) else max(self.high[i], value)
            self.last[i] = smooth
            self.filled += 1
            return
        if len(self.first) == self.max_bins:
            # Every bin is full: pairs become one bin, twice as wide, and the point goes on.
            self.first = self.first[0::2]
            self.low = [min(a, b) for a, b in zip(self.low[0::2], self.low[1::2])]
            self.high = [max(a, b) for a, b in zip(self.high[0::2], self.high[1::2])]
            self.last = self.last[1::2]
            self.size *= 2
            self.filled = self.size
            self.add(index, value, smooth)
            return
        self.first.append(index)
        self.low.append(value)
        self.high.append(value)
        self.last.append(smooth)
        self.filled = 1

    def curves(self, x: np.ndarray, lr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(x, loss) through each bin's min and max, and (x, smoothed, lr) at each bin."""
        index = np.asarray(self.first, dtype=np.int64)
        bin_x = x[index]
        peak_x = np.repeat(bin_x, 2)
        peak_y = np.empty(len(peak_x))
        peak_y[0::2] = self.low
        peak_y[1::2] = self.high
        return peak_x, peak_y, bin_x, np.asarray(self.last), lr[index]
