"""An x axis for counts (steps, epochs): ticks on whole numbers only.

pyqtgraph picks tick spacings of 1, 2 or 5 times a power of ten, so a run of three steps
gets ticks at 1.5 and 2.5; there is no step 1.5. Wall time is not a count, so the axis can
be switched back to pyqtgraph's own ticks.
"""

from __future__ import annotations

import math

import pyqtgraph as pg


class CountAxis(pg.AxisItem):
    """An AxisItem whose ticks are whole numbers at least 1 apart while ``counting`` is on."""

    def __init__(self, orientation: str = "bottom", **kwargs) -> None:
        super().__init__(orientation, **kwargs)
        self.counting = True

    def set_counting(self, counting: bool) -> None:
        """Whole-number ticks (steps, epochs) or pyqtgraph's own (wall time)."""
        if counting != self.counting:
            self.counting = counting
            self.picture = None  # the cached drawing holds the old ticks
            self.update()

    def tickSpacing(self, minVal: float, maxVal: float, size: float):  # noqa: N802 - pyqtgraph's name
        """pyqtgraph's levels without those finer than one (a level of 1 when none is left)."""
        levels = super().tickSpacing(minVal, maxVal, size)
        if not self.counting or not levels:
            return levels
        # Spacings are 1, 2 or 5 times a power of ten: those of at least 1 are whole numbers.
        coarse = [(spacing, offset) for spacing, offset in levels if spacing >= 1]
        return coarse or [(1.0, 0.0)]

    def tickValues(self, minVal: float, maxVal: float, size: float):  # noqa: N802 - pyqtgraph's name
        """The ticks of tickSpacing, dropping any that float arithmetic moved off a whole number."""
        levels = super().tickValues(minVal, maxVal, size)
        if not self.counting:
            return levels
        return [(max(spacing, 1.0), [float(round(v)) for v in values if math.isclose(v, round(v), abs_tol=1e-6)])
                for spacing, values in levels]
