"""Layout (issue 20, point 5): docks that stay readable when the window comes back smaller,
a Runs list whose columns all fit beside the plot, and whole-number ticks on a step axis."""

from __future__ import annotations

import json
import time
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QWidget

from app_helpers import new_main_window, screenshot, write_dataset
from lora_studio.settings import Settings

SIDE_DOCKS = ("workspace", "tags", "details")
# Narrowest widths at which each dock's columns and buttons can still be read.
READABLE = {"workspace": 200, "tags": 200, "details": 260}


def _close(win) -> None:
    """Close like the app does (saving the layout) and let its workers finish."""
    win.close()
    assert win.runner.pool.waitForDone(10_000)
    assert win.thumbnails.pool.waitForDone(10_000)


def _save_big_layout(qtbot, workspace: int, details: int) -> None:
    """A session in a big window whose user widened the side docks; closing saves its layout."""
    big = new_main_window(qtbot, size=(1900, 1100))
    big.resizeDocks([big.docks["workspace"], big.docks["details"]], [workspace, details], Qt.Orientation.Horizontal)
    qtbot.waitUntil(lambda: abs(big.docks["details"].width() - details) <= 2)
    _close(big)


def test_docks_stay_readable_when_the_window_comes_back_smaller(qtbot, tmp_path):
    workspace = tmp_path / "ws"
    write_dataset(workspace / "portraits_2024", "txt", 4)
    _save_big_layout(qtbot, 420, 560)
    # The next start is on a smaller screen: the same dock layout in a 1000x700 window.
    screen = QWidget()
    qtbot.addWidget(screen)
    screen.resize(1000, 700)
    screen.show()
    settings = Settings()
    settings.save_window_state(screen.saveGeometry(), settings.window_state()[1])
    settings.sync()
    screen.close()

    win = new_main_window(qtbot, size=None)
    with qtbot.waitSignal(win.datasetOpened, timeout=10_000):
        win.open_workspace(workspace)
    tree, grid = win.tree, win.centralWidget()

    def readable() -> None:
        # The window has made room for the grid's filter bar of the open dataset.
        assert grid.width() >= grid.minimumSizeHint().width()
        widths = {name: win.docks[name].width() for name in SIDE_DOCKS if win.docks[name].isVisible()}
        assert set(widths) == set(SIDE_DOCKS)  # the saved layout showed them all
        for name, width in widths.items():
            assert width >= READABLE[name], (name, width)
        # The folder column shows "portraits_2024" whole, and the image counts beside it.
        assert 0 < tree.sizeHintForColumn(0) <= tree.columnWidth(0), (tree.sizeHintForColumn(0), tree.columnWidth(0))
        assert tree.columnWidth(0) + tree.columnWidth(1) <= tree.viewport().width()
        # Details: the image's zoom beside its name, not cut off.
        zoom = win.detail.zoom_label
        assert zoom.text() and zoom.width() >= zoom.sizeHint().width(), (zoom.text(), zoom.width())

    qtbot.waitUntil(readable, timeout=20_000)  # the docks and the tree settle over a few layout passes
    screenshot(win, "docks_small")
    _close(win)


def test_dock_sizes_come_back_with_the_window_and_share_a_narrower_one_like_the_first_layout(qtbot):
    _save_big_layout(qtbot, 500, 600)
    same = new_main_window(qtbot, size=(1900, 1100))
    assert abs(same.docks["workspace"].width() - 500) <= 2 and abs(same.docks["details"].width() - 600) <= 2
    _close(same)
    # 1150 px cannot hold 500 + 600 px of docks and the grid: the docks get the first
    # layout's shares (260 and 380 of 1400 px), not whatever Qt squeezed them to.
    narrow = new_main_window(qtbot, size=(1150, 750))
    grid = narrow.centralWidget()

    def shared_like_the_first_layout() -> None:
        assert narrow.width() == 1150
        assert abs(narrow.docks["details"].width() - round(380 * 1150 / 1400)) <= 3, narrow.docks["details"].width()
        assert narrow.docks["workspace"].width() >= READABLE["workspace"]
        assert grid.width() > grid.minimumSizeHint().width()  # the grid is not squeezed to its minimum either

    qtbot.waitUntil(shared_like_the_first_layout, timeout=20_000)  # the docks move on the next layout pass
    _close(narrow)


def test_closing_on_the_runs_tab_keeps_the_caption_docks_for_the_next_start(qtbot):
    first = new_main_window(qtbot)
    assert first.caption_toolbar.isVisible() and first.toolbar.isVisible()
    first.workbench.setCurrentWidget(first.workbench.monitor)
    assert not first.docks["tags"].isVisible()  # the Runs tab has the room
    # Saving captions, undo, bulk edits: not on the Runs tab; opening a workspace, a new training: on every tab.
    assert not first.caption_toolbar.isVisible() and first.toolbar.isVisible()
    _close(first)
    second = new_main_window(qtbot)
    assert all(second.docks[name].isVisible() for name in (*SIDE_DOCKS, "problems"))
    assert second.caption_toolbar.isVisible()
    _close(second)


def _write_run(workspace: Path, name: str, state: str, step: int, total: int, hours_ago: float) -> None:
    """A finished run folder as the trainer and the launcher leave it (status.json, run.json, metrics)."""
    from lora_studio.targets.runinfo import RunInfo, write_run_info

    run_dir = workspace / "runs" / name
    run_dir.mkdir(parents=True)
    started = time.time() - hours_ago * 3600
    status = {"state": state, "step": step, "total_steps": total, "host": "gpu-box-01.lab.example.org",
              "pid": 4242, "started_at": started, "heartbeat": started + 600}
    (run_dir / "status.json").write_text(json.dumps(status), encoding="utf-8")
    write_run_info(run_dir, RunInfo("ssh", "Lab GPU server", "gpu-box-01.lab.example.org", 4242, ["train"], started,
                                    "1.0", "ssh", str(run_dir), "config.yaml"))
    (run_dir / "metrics.jsonl").write_text("".join(
        json.dumps({"step": s, "epoch": 1, "loss": 1.0 / s, "lr": 1e-4, "time": started + s}) + "\n"
        for s in range(1, 4)), encoding="utf-8")


def test_the_runs_list_shows_every_column_at_the_default_window_size(qtbot, tmp_path):
    workspace = tmp_path / "ws"
    workspace.mkdir()
    _write_run(workspace, "portrait-style-v3", "completed", 1200, 1200, 1)
    _write_run(workspace, "cats", "failed", 37, 400, 2)
    _write_run(workspace, "landscapes-sdxl-with-a-really-long-descriptive-name-v12", "stopped", 250, 2000, 3)
    win = new_main_window(qtbot, size=None)
    assert (win.width(), win.height()) == (1400, 880)  # the default: nothing saved yet
    win.open_workspace(workspace)
    monitor = win.workbench.monitor
    qtbot.waitUntil(lambda: monitor.model.rowCount() == 3, timeout=10_000)
    win.workbench.setCurrentWidget(monitor)
    table, header = monitor.table, monitor.table.horizontalHeader()

    def every_column_fits() -> None:
        assert not table.horizontalScrollBar().isVisible()
        for column in range(header.count()):
            needed = max(table.sizeHintForColumn(column), header.sectionSizeHint(column))
            if column == 0:  # the name gives way (elided); a name of usual length still fits
                needed = table.fontMetrics().horizontalAdvance("portrait-style-v3") + 8
            right = header.sectionViewportPosition(column) + header.sectionSize(column)
            assert header.sectionSize(column) >= needed and right <= table.viewport().width(), \
                (header.model().headerData(column, Qt.Orientation.Horizontal), header.sectionSize(column), needed)

    qtbot.waitUntil(every_column_fits, timeout=20_000)
    screenshot(win, "runs_list")
    _close(win)


def _tick_labels(plot, side: str = "bottom") -> list[str]:
    """The labels an axis of the plot paints now (the step axis unless ``side`` says another)."""
    axis = plot.plot.getAxis(side)
    image = QImage(10, 10, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        _axis, _ticks, texts = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return [text for _rect, _flags, text in texts]


def _plot_of(qtbot, tmp_path: Path, records: list[dict]):
    """A LossPlot on screen, showing one run whose metrics.jsonl holds ``records``."""
    from lora_studio.monitor.loss_plot import LossPlot

    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.resize(900, 500)
    plot.show()
    plot.add_run("run", metrics)
    assert plot.refresh() == len(records)
    return plot


def test_the_step_axis_of_a_short_run_has_whole_number_ticks(qtbot, tmp_path):
    plot = _plot_of(qtbot, tmp_path, [{"step": s, "epoch": 1, "loss": 1.0 / s, "lr": 1e-4, "time": 100 + 90 * s}
                                      for s in (1, 2, 3)])
    axis = plot.plot.getAxis("bottom")
    qtbot.waitUntil(lambda: axis.geometry().width() > 500)  # laid out at the widget's width
    low, high = plot.plot.vb.viewRange()[0]
    values = [v for _spacing, level in axis.tickValues(low, high, axis.geometry().width()) for v in level]
    assert values and all(v == int(v) for v in values), values
    labels = _tick_labels(plot)
    assert labels and set(labels) <= {"1", "2", "3"}, labels
    # Wall time is no count: its ticks fall between whole minutes (3 minutes here).
    plot.x_axis.setCurrentText("Wall time (min)")
    labels = _tick_labels(plot)
    assert labels and any(float(text) != int(float(text)) for text in labels), labels


def test_the_loss_and_learning_rate_axes_read_as_the_numbers_in_a_config(qtbot, tmp_path):
    """Losses of 0.35 are ticked 0.35, not 350 "(x0.001)"; learning rates are ticked 5e-5, not 50 "(x1e-06)"."""
    import re

    plot = _plot_of(qtbot, tmp_path, [{"step": s, "epoch": 1, "loss": 0.35 + 0.13 * 0.97 ** s,
                                       "lr": 1e-4 * min(1.0, s / 50), "time": s} for s in range(1, 121)])
    qtbot.waitUntil(lambda: plot.plot.getAxis("right").geometry().height() > 300)
    losses = _tick_labels(plot, "left")
    assert losses and all(0.3 <= float(text) <= 0.5 for text in losses), losses
    rates = _tick_labels(plot, "right")
    assert rates and all(re.fullmatch(r"0|\d(\.\d+)?e-\d+", text) for text in rates), rates
    assert "1e-4" in rates and all(0 <= float(text) <= 1.2e-4 for text in rates), rates  # the rate the run warms up to
    for side in ("left", "right"):
        assert "(x" not in plot.plot.getAxis(side).labelString()  # no scale factor moved into the label
