"""The Runs list: every run folder of the workspace with its state, progress and target."""

from __future__ import annotations

import math
from datetime import datetime

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor

from ..targets.placement import placement_of
from ..targets.runs import RunSummary
from .placement_view import placement_tip

COLUMNS = ("Run", "State", "Progress", "Target", "Started", "Last loss")
STATE_COLORS = {"training": "#2563eb", "sampling": "#2563eb", "saving": "#2563eb", "preparing": "#7c3aed",
                "starting": "#7c3aed", "launched": "#7c3aed", "completed": "#15803d", "stopped": "#a16207",
                "failed": "#dc2626", "lost": "#dc2626", "not_started": "#6b7280", "queued": "#0891b2"}
RUN_ROLE = Qt.ItemDataRole.UserRole + 1


class RunsModel(QAbstractTableModel):
    """Rows of RunSummary (from lora_studio.targets.runs.list_runs), refreshed in place."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.runs: list[RunSummary] = []
        self.last_loss: dict[str, float] = {}

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.runs)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self.runs):
            return None
        run = self.runs[index.row()]
        column = index.column()
        if role == RUN_ROLE:
            return str(run.path)
        if role == Qt.ItemDataRole.DisplayRole:
            if column == 0:
                return run.name
            if column == 1:
                return run.state
            if column == 2:
                return f"{run.step} / {run.total_steps}" if run.total_steps else str(run.step or "")
            if column == 3:
                # The name only: host names are long, and the list must fit beside the plot
                # (the tooltip and the run's header say where it runs).
                placement = placement_of(run.info)
                if placement is not None:  # the first node (it hosts the rendezvous) and how many more
                    return f"{placement.targets[0]} +{len(placement.targets) - 1}"
                return run.target or run.host
            if column == 4:
                return datetime.fromtimestamp(run.started_at).strftime("%Y-%m-%d %H:%M") if run.started_at else ""
            if column == 5:
                loss = self.last_loss.get(str(run.path))
                return f"{loss:.4f}" if loss is not None and not math.isnan(loss) else ""
        if role == Qt.ItemDataRole.ForegroundRole and column == 1:
            return QColor(STATE_COLORS.get(run.state, "#6b7280"))
        if role == Qt.ItemDataRole.ToolTipRole:
            if run.error:
                return f"{run.error.get('message', '')}\n{run.error.get('hint', '')}"
            if run.state == "lost":
                age = f"{run.heartbeat_age_s / 60:.0f} min" if run.heartbeat_age_s else "a while"
                return f"No heartbeat for {age} and the trainer process is gone: resume it from its last checkpoint."
            if run.kind == "queued":
                return f"{run.note}.\nIt starts by itself when a target frees up; the Fleet tab moves it in the queue."
            if run.state == "queued" and run.ray_job is not None:
                return f"Queued by Ray: it starts when a node of the cluster has the GPUs and CPUs it asks for.\n" \
                       f"{run.ray_job.message}"
            if column == 3 and placement_of(run.info) is not None:
                return placement_tip(placement_of(run.info))
            if column == 3 and run.target and run.host:
                return f"{run.target} on {run.host}"
            return str(run.path)
        if role == Qt.ItemDataRole.UserRole:  # sort key
            # Runs in the queue have not started: newest first puts them on top, in queue order (a stable sort).
            started = math.inf if run.kind == "queued" else run.started_at or 0
            return (run.name, run.state, run.step, run.target, started,
                    self.last_loss.get(str(run.path), math.inf))[column]
        return None

    def set_runs(self, runs: list[RunSummary]) -> None:
        """Replace the rows, keeping rows that did not change (selection survives refreshes)."""
        old = {str(r.path): i for i, r in enumerate(self.runs)}
        if [str(r.path) for r in runs] == list(old):
            self.runs = runs
            if runs:
                self.dataChanged.emit(self.index(0, 0), self.index(len(runs) - 1, len(COLUMNS) - 1))
            return
        self.beginResetModel()
        self.runs = runs
        self.endResetModel()

    def update_run(self, summary: RunSummary) -> None:
        """The row of ``summary``'s run as the page read it just now: the shown run's step and state in the list
        match its head between the list's rescans."""
        for row, run in enumerate(self.runs):
            if run.path == summary.path and run.kind == summary.kind:
                self.runs[row] = summary
                self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))

    def set_last_loss(self, run_path: str, loss: float) -> None:
        self.last_loss[run_path] = loss
        for row, run in enumerate(self.runs):
            if str(run.path) == run_path:
                self.dataChanged.emit(self.index(row, 5), self.index(row, 5))


def age_text(seconds: float | None) -> str:
    """`3 s`, `5 min`, `2.0 h` ago."""
    if seconds is None:
        return ""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


