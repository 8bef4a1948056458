"""The loss plot: raw and smoothed loss, learning rate on a second axis, several runs overlaid.

pyqtgraph with clip-to-view and peak downsampling draws only what is on screen at screen
resolution, so a million points stay smooth. The x axis shows steps, epochs or wall time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout,
                               QWidget)

from .series import MetricSeries

X_AXES = {"Steps": "step", "Epochs": "epoch", "Wall time (min)": "time"}
# Distinguishable on light and dark backgrounds; the first run gets the first colour.
PALETTE = ("#3b82f6", "#f97316", "#10b981", "#e11d48", "#8b5cf6", "#a16207")


class RunCurves:
    """The plot items of one run."""

    def __init__(self, plot: pg.PlotItem, lr_box: pg.ViewBox, name: str, color: str) -> None:
        self.raw = plot.plot([], [], pen=pg.mkPen(color, width=1), name=None)
        self.raw.setOpacity(0.3)
        self.smooth = plot.plot([], [], pen=pg.mkPen(color, width=2), name=f"{name} loss")
        self.lr = pg.PlotDataItem([], [], pen=pg.mkPen(color, width=1, style=Qt.PenStyle.DashLine))
        lr_box.addItem(self.lr)
        self.markers = pg.ScatterPlotItem(size=9, symbol="t", brush=pg.mkBrush(color), pen=pg.mkPen(None))
        plot.addItem(self.markers)
        for item in (self.raw, self.smooth, self.lr):
            item.setClipToView(True)
            item.setDownsampling(auto=True, method="peak")
        self.items = (self.raw, self.smooth, self.lr, self.markers)


class LossPlot(QWidget):
    """Loss curves of one or more runs with the controls users expect."""

    hovered = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.series: dict[str, MetricSeries] = {}
        self.curves: dict[str, RunCurves] = {}
        self.recovery_steps: dict[str, list[int]] = {}

        self.graph = pg.PlotWidget(self)
        self.graph.setObjectName("lossPlot")
        palette = self.palette()
        # Follow the app's light/dark theme rather than pyqtgraph's black default.
        self.graph.setBackground(palette.color(palette.ColorRole.Base))
        foreground = palette.color(palette.ColorRole.Text)
        for side in ("left", "bottom", "right"):
            self.graph.getPlotItem().getAxis(side).setTextPen(foreground)
            self.graph.getPlotItem().getAxis(side).setPen(pg.mkPen(foreground.lighter(150) if foreground.value() < 128
                                                                   else foreground.darker(150)))
        self.plot = self.graph.getPlotItem()
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.setLabel("left", "loss")
        self.plot.setLabel("bottom", "step")
        self.legend = self.plot.addLegend(offset=(-10, 10))
        # The learning rate gets its own y axis on the right, sharing the x axis.
        self.lr_box = pg.ViewBox()
        self.plot.showAxis("right")
        self.plot.scene().addItem(self.lr_box)
        self.plot.getAxis("right").linkToView(self.lr_box)
        self.plot.getAxis("right").setLabel("learning rate")
        self.lr_box.setXLink(self.plot)
        self.plot.vb.sigResized.connect(self._sync_lr_box)
        self.cursor = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen("#888", width=1))
        self.plot.addItem(self.cursor, ignoreBounds=True)
        self.readout = QLabel(" ", self)
        self.readout.setObjectName("plotReadout")
        self._mouse = pg.SignalProxy(self.plot.scene().sigMouseMoved, rateLimit=30, slot=self._mouse_moved)

        self.x_axis = QComboBox(self)
        self.x_axis.addItems(list(X_AXES))
        self.x_axis.currentIndexChanged.connect(self.redraw)
        self.smoothing = QSlider(Qt.Orientation.Horizontal, self)
        self.smoothing.setRange(0, 99)
        self.smoothing.setValue(90)
        self.smoothing.setFixedWidth(120)
        self.smoothing.setToolTip("Smoothing of the bold curve (exponential moving average)")
        self.smoothing.valueChanged.connect(self._smoothing_changed)
        self.log_scale = QCheckBox("Log scale", self)
        self.log_scale.toggled.connect(lambda on: self.plot.setLogMode(y=on))
        self.show_raw = QCheckBox("Raw", self)
        self.show_raw.setChecked(True)
        self.show_raw.toggled.connect(self.redraw)
        self.show_lr = QCheckBox("Learning rate", self)
        self.show_lr.setChecked(True)
        self.show_lr.toggled.connect(self.redraw)
        reset = QPushButton("Reset zoom", self)
        reset.clicked.connect(self.reset_zoom)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("X axis:", self))
        bar.addWidget(self.x_axis)
        bar.addWidget(QLabel("Smoothing:", self))
        bar.addWidget(self.smoothing)
        bar.addWidget(self.show_raw)
        bar.addWidget(self.show_lr)
        bar.addWidget(self.log_scale)
        bar.addStretch(1)
        bar.addWidget(reset)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.graph, 1)
        layout.addWidget(self.readout)

    # -- runs --------------------------------------------------------------------------
    def add_run(self, name: str, metrics_path: Path) -> MetricSeries:
        """Show a run (overlaid on the others); returns its series."""
        if name in self.series:
            return self.series[name]
        series = MetricSeries(metrics_path, self.smoothing.value() / 100)
        self.series[name] = series
        self.curves[name] = RunCurves(self.plot, self.lr_box, name, PALETTE[(len(self.curves)) % len(PALETTE)])
        return series

    def remove_run(self, name: str) -> None:
        """Take a run off the plot."""
        curves = self.curves.pop(name, None)
        self.series.pop(name, None)
        if curves is not None:
            for item in curves.items:
                (self.lr_box if item is curves.lr else self.plot).removeItem(item)
            self.legend.removeItem(curves.smooth)

    def runs(self) -> list[str]:
        return list(self.series)

    def set_recoveries(self, name: str, steps: list[int]) -> None:
        """Steps where a run was resumed or recovered (drawn as markers on its curve)."""
        self.recovery_steps[name] = steps

    def refresh(self) -> int:
        """Read new points of every run and redraw those that changed; returns the new points."""
        arrived = 0
        for name, series in self.series.items():
            count = series.refresh()
            if count:
                arrived += count
                self._draw(name)
        return arrived

    def redraw(self) -> None:
        for name in self.series:
            self._draw(name)
        self.plot.setLabel("bottom", self.x_axis.currentText().lower())

    def _x(self, series: MetricSeries) -> np.ndarray:
        key = X_AXES[self.x_axis.currentText()]
        x = series.column(key)
        if key == "time" and len(x):
            return (x - x[0]) / 60.0
        return x

    def _draw(self, name: str) -> None:
        series, curves = self.series[name], self.curves[name]
        x = self._x(series)
        loss = series.column("loss")
        curves.raw.setData(x, loss)
        curves.raw.setVisible(self.show_raw.isChecked())
        curves.smooth.setData(x, series.ema)
        lr = series.column("lr")
        curves.lr.setData(x, lr)
        curves.lr.setVisible(self.show_lr.isChecked())
        if len(lr) and np.isfinite(lr).any():
            # From zero to just above the peak: a constant rate is a flat line near the top.
            top = max(float(np.nanmax(lr)) for s in self.series.values() if len(s) for lr in [s.column("lr")])
            self.lr_box.setYRange(0, top * 1.15 or 1.0, padding=0)
        steps = self.recovery_steps.get(name, [])
        if steps and len(x):
            index = np.clip(np.searchsorted(series.column("step"), steps), 0, len(x) - 1)
            curves.markers.setData(x[index], series.ema[index])
        else:
            curves.markers.setData([], [])

    def _smoothing_changed(self, value: int) -> None:
        for series in self.series.values():
            series.set_smoothing(value / 100)
        self.redraw()

    def reset_zoom(self) -> None:
        """Show every point again (the learning-rate axis keeps its zero-based range)."""
        self.plot.enableAutoRange()

    def _sync_lr_box(self) -> None:
        self.lr_box.setGeometry(self.plot.vb.sceneBoundingRect())
        self.lr_box.linkedViewChanged(self.plot.vb, self.lr_box.XAxis)

    def _mouse_moved(self, event) -> None:
        position = event[0]
        if not self.plot.sceneBoundingRect().contains(position) or not self.series:
            return
        x = self.plot.vb.mapSceneToView(position).x()
        self.cursor.setPos(x)
        parts = []
        for name, series in self.series.items():
            xs = self._x(series)
            if not len(xs):
                continue
            i = int(np.clip(np.searchsorted(xs, x), 0, len(xs) - 1))
            step = int(series.column("step")[i])
            loss, smooth, lr = series.column("loss")[i], series.ema[i], series.column("lr")[i]
            parts.append(f"<b>{name}</b> step {step}: loss {loss:.4f} (smoothed {smooth:.4f}), lr {lr:.2e}")
        text = " &nbsp; ".join(parts)
        self.readout.setText(text)
        self.hovered.emit(text)

    # -- export ------------------------------------------------------------------------
    def export_png(self, path: Path) -> None:
        """Save the plot as it looks now."""
        self.graph.grab().save(str(path))

    def export_csv(self, name: str, path: Path) -> None:
        """Save one run's points (with the smoothed loss) as CSV."""
        from trainer.fsutil import atomic_write_text
        atomic_write_text(path, self.series[name].to_csv())
