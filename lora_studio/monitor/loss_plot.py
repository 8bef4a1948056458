"""The loss plot: raw and smoothed loss, learning rate on a second axis, several runs overlaid.

A language-model run that holds examples out (``val_size``) also writes ``eval_loss`` every
``eval_steps``: it is drawn as a dashed curve with a dot per evaluation, in a colour of its own,
and gets a legend entry once the first evaluation arrives. The learning rate is a thin dashed line
in the run's colour, on the right axis, with a legend entry of its own.

pyqtgraph with clip-to-view and peak downsampling draws only what is on screen at screen
resolution, so a million points stay smooth. The x axis shows steps, epochs or wall time.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QGridLayout, QHBoxLayout, QLabel, QPushButton, QSlider,
                               QVBoxLayout, QWidget)

from .count_axis import CountAxis
from .rate_axis import RateAxis
from .series import MetricSeries

X_AXES = {"Steps": "step", "Epochs": "epoch", "Wall time (min)": "time"}
COUNTED = {"step", "epoch"}  # x axes of whole numbers: no ticks between them
# Distinguishable on light and dark backgrounds; the first run gets the first colour.
PALETTE = ("#3b82f6", "#f97316", "#10b981", "#e11d48", "#8b5cf6", "#a16207")
# The eval loss of the run with the same index: none of these is a loss colour.
EVAL_PALETTE = ("#c026d3", "#0891b2", "#ca8a04", "#4b5563", "#db2777", "#65a30d")
# What the empty plot says: no run chosen, or a run that has logged no step yet (queued, starting up).
NO_RUN_HINT = "Select a run to see its loss curve"
NO_STEPS_HINT = "No steps logged yet: the curve starts with the run's first step"
READING_HINT = "Reading the run's curve…"  # a long history is read in a worker


class RunCurves:
    """The plot items of one run."""

    def __init__(self, plot: pg.PlotItem, lr_box: pg.ViewBox, name: str, color: str, eval_color: str) -> None:
        self.raw = plot.plot([], [], pen=pg.mkPen(color, width=1), name=None)
        self.raw.setOpacity(0.3)
        self.smooth = plot.plot([], [], pen=pg.mkPen(color, width=2), name=f"{name} loss")
        self.lr = pg.PlotDataItem([], [], pen=pg.mkPen(color, width=1, style=Qt.PenStyle.DashLine))
        lr_box.addItem(self.lr)
        self.markers = pg.ScatterPlotItem(size=9, symbol="t", brush=pg.mkBrush(color), pen=pg.mkPen(None))
        plot.addItem(self.markers)
        self.eval = plot.plot([], [], pen=pg.mkPen(eval_color, width=2, style=Qt.PenStyle.DashLine), symbol="o",
                              symbolSize=6, symbolBrush=pg.mkBrush(eval_color), symbolPen=pg.mkPen(None), name=None)
        self.eval.setVisible(False)
        # Legend entries added and taken away while the run is shown: the eval loss once the first
        # evaluation arrives (image runs have none), the learning rate while "Learning rate" is on.
        self.labels = {self.eval: f"{name} eval loss", self.lr: f"{name} learning rate"}
        self.in_legend: set[pg.PlotDataItem] = set()
        for item in (self.raw, self.smooth, self.lr, self.eval):
            # The plot hands these at most a few thousand points (see LossPlot._draw).
            item.setSkipFiniteCheck(True)
        self.items = (self.raw, self.smooth, self.lr, self.markers, self.eval)


class LossPlot(QWidget):
    """Loss curves of one or more runs with the controls users expect."""

    hovered = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.series: dict[str, MetricSeries] = {}
        self.curves: dict[str, RunCurves] = {}
        self.recovery_steps: dict[str, list[int]] = {}
        self._lr_top = 0.0  # the highest learning rate shown: the LR axis goes from 0 to just above it

        self.x_ticks = CountAxis("bottom")
        self.graph = pg.PlotWidget(self, axisItems={"bottom": self.x_ticks, "right": RateAxis("right")})
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
        for side in ("left", "bottom", "right"):
            # Major ticks only: the axes and their grid are repainted on every new point, and
            # minor grid lines cost more than the curves themselves at a million points.
            self.plot.getAxis(side).setStyle(maxTickLevel=0)
        self.plot.setLabel("left", "loss")
        self.plot.getAxis("left").enableAutoSIPrefix(False)  # 0.35, not 350 with "(x0.001)" in the label
        self.plot.setLabel("bottom", "step")
        self.legend = self.plot.addLegend(offset=(-10, 10))
        self.legend.setLabelTextColor(foreground)  # pyqtgraph's light grey is faint on a light theme
        # The learning rate gets its own y axis on the right, sharing the x axis.
        self.lr_box = pg.ViewBox()
        self.plot.showAxis("right")
        self.plot.scene().addItem(self.lr_box)
        self.plot.getAxis("right").linkToView(self.lr_box)
        self.plot.getAxis("right").setLabel("learning rate")
        self.lr_box.setXLink(self.plot)
        self.plot.vb.sigResized.connect(self._sync_lr_box)
        # Follow the newest points (ranges set from running extremes: no full scans) until
        # the user zooms or pans; "Reset zoom" follows again.
        self.following = True
        self.plot.vb.disableAutoRange()
        self.plot.vb.sigRangeChangedManually.connect(self._stop_following)
        self.plot.vb.sigXRangeChanged.connect(self._view_changed)
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
        self.log_scale.toggled.connect(lambda on: (self.plot.setLogMode(y=on), self.reset_zoom()))
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
        self.empty_hint = QLabel(NO_RUN_HINT, self)
        self.empty_hint.setObjectName("hint")  # the theme's secondary text
        self.empty_hint.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        over = QGridLayout()  # the hint lies over the middle of the graph, in the same cell
        over.addWidget(self.graph, 0, 0)
        over.addWidget(self.empty_hint, 0, 0, Qt.AlignmentFlag.AlignCenter)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addLayout(over, 1)
        layout.addWidget(self.readout)

    # -- runs --------------------------------------------------------------------------
    def add_run(self, name: str, metrics_path: Path, loading: bool = False) -> MetricSeries:
        """Show a run (overlaid on the others); returns its series. ``loading``: a worker reads its history
        (the plot skips it until :meth:`loaded`)."""
        if name in self.series:
            return self.series[name]
        series = MetricSeries(metrics_path, self.smoothing.value() / 100)
        series.loading = loading
        self.series[name] = series
        index = len(self.curves)
        self.curves[name] = RunCurves(self.plot, self.lr_box, name, PALETTE[index % len(PALETTE)],
                                      EVAL_PALETTE[index % len(EVAL_PALETTE)])
        self._show_hint()
        return series

    def remove_run(self, name: str) -> None:
        """Take a run off the plot."""
        curves = self.curves.pop(name, None)
        self.series.pop(name, None)
        if not self.series:
            self._lr_top = 0.0
        if curves is not None:
            for item in curves.items:
                (self.lr_box if item is curves.lr else self.plot).removeItem(item)
            self.legend.removeItem(curves.smooth)
            for item in curves.in_legend:
                self.legend.removeItem(item)
        self._show_hint()

    def runs(self) -> list[str]:
        return list(self.series)

    def _show_hint(self) -> None:
        """Say why the plot is empty, while it is."""
        has_points = any(len(series) for series in self.series.values())
        loading = any(series.loading for series in self.series.values())
        self.empty_hint.setText(READING_HINT if loading else NO_STEPS_HINT if self.series else NO_RUN_HINT)
        self.empty_hint.setVisible(not has_points)
        self.legend.setVisible(has_points)  # a legend of curves not drawn yet only clutters the hint

    def set_recoveries(self, name: str, steps: list[int]) -> None:
        """Steps where a run was resumed or recovered (drawn as markers on its curve)."""
        self.recovery_steps[name] = steps

    def refresh(self) -> int:
        """Read new points of every run and redraw those that changed; returns the new points."""
        arrived = 0
        for name, series in self.series.items():
            if series.loading:
                continue
            count = series.refresh()
            if count:
                arrived += count
                self._draw(name)
        if arrived:
            self._follow()
            self._show_hint()
        return arrived

    def loaded(self, name: str) -> None:
        """A worker finished reading a run's history: draw it."""
        if name in self.series:
            self.series[name].loading = False
            self._draw(name)
            self._follow()
            self._show_hint()

    def redraw(self) -> None:
        for name in self.series:
            if not self.series[name].loading:
                self._draw(name)
        self.plot.setLabel("bottom", self.x_axis.currentText().lower())
        self.x_ticks.set_counting(X_AXES[self.x_axis.currentText()] in COUNTED)
        self._follow()

    def _x(self, series: MetricSeries) -> np.ndarray:
        key = X_AXES[self.x_axis.currentText()]
        x = series.column(key)
        if key == "time" and len(x):
            return (x - x[0]) / 60.0
        return x

    def _draw(self, name: str) -> None:
        series, curves = self.series[name], self.curves[name]
        x = self._x(series)
        loss, lr = series.column("loss"), series.column("lr")
        window = self._visible_slice(x)
        if window is None:
            # The whole run (or most of it) is on screen: draw the per-bin min/max, which
            # costs the same at a million points as at a thousand.
            peak_x, peak_y, bin_x, smooth, bin_lr = series.decimated.curves(x, lr)
            curves.raw.setData(peak_x, peak_y)
            curves.smooth.setData(bin_x, smooth)
            curves.lr.setData(bin_x, bin_lr)
        else:
            curves.raw.setData(x[window], loss[window])
            curves.smooth.setData(x[window], series.ema[window])
            curves.lr.setData(x[window], lr[window])
        curves.raw.setVisible(self.show_raw.isChecked())
        curves.lr.setVisible(self.show_lr.isChecked())
        self._in_legend(curves, curves.lr, self.show_lr.isChecked())
        self._draw_eval(series, curves, x)
        if len(lr) and math.isfinite(lr[-1]):
            # From zero to just above the newest rate (schedules only fall after warm-up).
            self._lr_top = max(self._lr_top, float(lr[-1]))
            self.lr_box.setYRange(0, self._lr_top * 1.15 or 1.0, padding=0)
        steps = self.recovery_steps.get(name, [])
        if steps and len(x):
            index = np.clip(np.searchsorted(series.column("step"), steps), 0, len(x) - 1)
            curves.markers.setData(x[index], series.ema[index])
        else:
            curves.markers.setData([], [])

    def _draw_eval(self, series: MetricSeries, curves: RunCurves, x: np.ndarray) -> None:
        """The eval-loss points (few: one per eval_steps), shown with a legend entry only when there are any."""
        index = series.eval_indices()
        curves.eval.setData(x[index], series.column("eval_loss")[index])
        curves.eval.setVisible(bool(len(index)))
        self._in_legend(curves, curves.eval, bool(len(index)))

    def _in_legend(self, curves: RunCurves, item: pg.PlotDataItem, shown: bool) -> None:
        """Give ``item`` its legend entry while it is drawn, and take it away when it is not."""
        if shown and item not in curves.in_legend:
            self.legend.addItem(item, curves.labels[item])
            curves.in_legend.add(item)
        elif not shown and item in curves.in_legend:
            self.legend.removeItem(item)
            curves.in_legend.discard(item)

    def _visible_slice(self, x: np.ndarray) -> slice | None:
        """The points inside a zoomed-in view when they are few enough to draw one by one."""
        if self.following or not len(x):
            return None
        low, high = self.plot.vb.viewRange()[0]
        start, stop = np.searchsorted(x, [low, high])
        start, stop = max(0, int(start) - 1), min(len(x), int(stop) + 1)
        return slice(start, stop) if stop - start <= 20_000 else None

    def _view_changed(self, *_args) -> None:
        if not self.following:
            self.redraw()

    def _smoothing_changed(self, value: int) -> None:
        for series in self.series.values():
            series.set_smoothing(value / 100)
        self.redraw()

    def reset_zoom(self) -> None:
        """Show every point again and follow new ones."""
        self.following = True
        self._follow()

    def _stop_following(self, *_args) -> None:
        self.following = False

    def _follow(self) -> None:
        if not self.following:
            return
        shown = [s for s in self.series.values() if len(s) and not s.loading]
        if not shown:
            return
        xs = [self._x(s) for s in shown]
        x_low, x_high = min(float(x[0]) for x in xs), max(float(x[-1]) for x in xs)
        low = min(s.loss_min for s in shown)
        high = max(s.loss_max for s in shown)
        for s in shown:  # the held-out loss usually lies above the training loss: keep it in view
            evals = s.column("eval_loss")[s.eval_indices()]
            if len(evals):
                low, high = min(low, float(evals.min())), max(high, float(evals.max()))
        if not (math.isfinite(low) and math.isfinite(high)):
            return
        if self.log_scale.isChecked():
            low, high = math.log10(max(low, 1e-12)), math.log10(max(high, 1e-12))
        self.plot.vb.setRange(xRange=(x_low, x_high if x_high > x_low else x_low + 1),
                              yRange=(low, high if high > low else low + 1e-3), padding=0.02)

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
            text = f"<b>{name}</b> step {step}: loss {loss:.4f} (smoothed {smooth:.4f}), lr {lr:.2e}"
            evals = series.eval_indices()
            last = int(np.searchsorted(evals, i, side="right")) - 1  # the newest evaluation up to here
            if last >= 0:
                j = int(evals[last])
                text += f", eval loss {series.column('eval_loss')[j]:.4f} (step {int(series.column('step')[j])})"
            parts.append(text)
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
