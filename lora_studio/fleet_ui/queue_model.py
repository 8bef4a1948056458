"""The Fleet view's queue: one row a queued run, in the order they go out, with what each waits for."""

from __future__ import annotations

import time

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor

from ..fleet import QueueRow

COLUMNS = ("#", "Run", "Needs", "Status", "Queued")
RUN_ROLE = Qt.ItemDataRole.UserRole + 1
FAILED_COLOR, STARTING_COLOR = "#dc2626", "#2563eb"


def _queued_text(row: QueueRow, now: float) -> str:
    when = row.entry.queued_at
    clock = time.strftime("%H:%M" if now - when < 20 * 3600 else "%Y-%m-%d %H:%M", time.localtime(when))
    return f"{clock} by {row.entry.queued_by}" if row.entry.queued_by else clock


class QueueModel(QAbstractTableModel):
    """Rows of :class:`~lora_studio.fleet.api.QueueRow` from the dispatcher's snapshots."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.rows: list[QueueRow] = []

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole and 0 <= section < len(COLUMNS):
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self.rows):
            return None
        row, column = self.rows[index.row()], index.column()
        entry = row.entry
        if role == RUN_ROLE:
            return str(entry.run_dir)
        if role == Qt.ItemDataRole.DisplayRole:
            return (str(row.place) if row.place else "—", entry.name, entry.needs.describe(),
                    self._status(row), _queued_text(row, time.time()))[column]
        if role == Qt.ItemDataRole.ForegroundRole and column == 3:
            if entry.state == "failed":
                return QColor(FAILED_COLOR)
            if entry.claim is not None:
                return QColor(STARTING_COLOR)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row)
        if role == Qt.ItemDataRole.TextAlignmentRole and column == 0:
            return int(Qt.AlignmentFlag.AlignCenter)
        return None

    @staticmethod
    def _status(row: QueueRow) -> str:
        return row.status[:1].upper() + row.status[1:]

    @staticmethod
    def _tooltip(row: QueueRow) -> str:
        entry = row.entry
        lines = [f"{entry.name} — {row.status}", f"Run folder: {entry.run_dir}"]
        if entry.source_config:
            lines.append(f"Queued from {entry.source_config} (it starts from the copy in its run folder)")
        if entry.needs.targets:
            lines.append(f"May run on: {', '.join(entry.needs.targets)}")
        else:
            lines.append("May run on any target of the desk that sends it")
        for problem in (entry.error or {}).get("problems") or []:
            lines.append(f"• {problem}")
        return "\n".join(lines)

    def set_rows(self, rows: list[QueueRow]) -> None:
        """Show ``rows``; the same runs in the same order are updated in place (the selection stays)."""
        if [r.entry.run_dir for r in rows] == [r.entry.run_dir for r in self.rows]:
            self.rows = rows
            if rows:
                self.dataChanged.emit(self.index(0, 0), self.index(len(rows) - 1, len(COLUMNS) - 1))
            return
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def row_of(self, run_dir: str) -> int:
        """The row of the run in ``run_dir``, -1 when it is not listed."""
        return next((i for i, r in enumerate(self.rows) if str(r.entry.run_dir) == run_dir), -1)
