"""The learning-rate axis: ticks in scientific notation (``1e-4``, ``5e-5``), as configs write them.

pyqtgraph's own axis scales small values by an SI prefix instead and moves the power into
the label ("learning rate (x1e-06)" over ticks of 20 … 100), which nobody reads as 1e-4.
"""

from __future__ import annotations

import math

import pyqtgraph as pg

SCIENTIFIC_BELOW = 0.01  # tick spacings under this read as 2e-5 …; 0.2 … stays 0.2 …


def scientific(value: float, spacing: float) -> str:
    """``value`` as ``2.5e-5``, with just the digits that tell ticks ``spacing`` apart."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    exponent = math.floor(math.log10(abs(value)))
    digits = max(0, exponent - math.floor(math.log10(spacing))) if spacing > 0 else 2
    mantissa = round(value / 10 ** exponent, digits)
    if abs(mantissa) >= 10:  # 9.99e-5 rounded up: it reads 1e-4
        mantissa, exponent = mantissa / 10, exponent + 1
    text = f"{mantissa:.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text}e{exponent}"


class RateAxis(pg.AxisItem):
    """An AxisItem for learning rates: no SI prefix, scientific tick labels."""

    def __init__(self, orientation: str = "right", **kwargs) -> None:
        super().__init__(orientation, **kwargs)
        self.enableAutoSIPrefix(False)

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:  # noqa: N802 - pyqtgraph's name
        """Scientific labels for rates ticked finer than 0.01; coarser ticks (Prodigy's lr 1.0, the empty
        plot's 0 … 1) and log mode keep pyqtgraph's own."""
        if self.logMode or spacing * scale >= SCIENTIFIC_BELOW:
            return super().tickStrings(values, scale, spacing)
        return [scientific(value * scale, spacing * scale) for value in values]
