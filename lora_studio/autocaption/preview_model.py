"""The preview table: one row per captioned image, its caption now and after applying."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication

from .plan import Outcome, PreviewRow

COLUMNS = ("Image", "Caption now", "After")
COL_IMAGE, COL_NOW, COL_AFTER = range(3)
NOTE_PREFIX = {Outcome.KEPT: "kept: ", Outcome.SAME: "unchanged: ", Outcome.ERROR: "⚠ skipped: ",
               Outcome.GONE: "⚠ "}
Index = QModelIndex | QPersistentModelIndex


class PreviewModel(QAbstractTableModel):
    """Read-only rows of :class:`PreviewRow`; the dialog replaces them as results arrive."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.rows: list[PreviewRow] = []

    def set_rows(self, rows: list[PreviewRow]) -> None:
        """Show ``rows``: appended when they extend what is shown (keeps the scroll position)."""
        same_start = len(rows) >= len(self.rows) and all(a.rel == b.rel for a, b in zip(self.rows, rows))
        if not same_start:
            self.beginResetModel()
            self.rows = list(rows)
            self.endResetModel()
            return
        old = len(self.rows)
        changed = [i for i in range(old) if self.rows[i] != rows[i]]
        if len(rows) > old:
            self.beginInsertRows(QModelIndex(), old, len(rows) - 1)
            self.rows = list(rows)
            self.endInsertRows()
        else:
            self.rows = list(rows)
        if changed:
            self.dataChanged.emit(self.index(min(changed), 0), self.index(max(changed), len(COLUMNS) - 1))

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt's API
        """Rows: none below the top level (a table)."""
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt's API
        """Image, caption now, after."""
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802 - Qt's API
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Column titles."""
        horizontal = orientation == Qt.Orientation.Horizontal
        if horizontal and role == Qt.ItemDataRole.DisplayRole and 0 <= section < len(COLUMNS):
            return COLUMNS[section]
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        """Selectable, not editable."""
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Texts, full-text tooltips, and muted italics for rows that do not change."""
        if not index.isValid() or not 0 <= index.row() < len(self.rows):
            return None
        row = self.rows[index.row()]
        column = index.column()
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            text = self._text(row, column)
            if role == Qt.ItemDataRole.ToolTipRole and row.note:
                return f"{text}\n\n{row.note}" if column != COL_AFTER else row.note
            return text
        changed = row.outcome is Outcome.CHANGE
        if role == Qt.ItemDataRole.FontRole and column == COL_AFTER and not changed:
            font = QFont()
            font.setItalic(True)
            return font
        if role == Qt.ItemDataRole.ForegroundRole and column == COL_AFTER:
            if row.outcome in (Outcome.ERROR, Outcome.GONE):
                return QColor("#b45309")
            if not changed:
                return QApplication.palette().color(QPalette.ColorRole.PlaceholderText)
        return None

    @staticmethod
    def _text(row: PreviewRow, column: int) -> str:
        if column == COL_IMAGE:
            return row.rel
        if column == COL_NOW:
            return row.now or "(empty)"
        if row.outcome is Outcome.CHANGE:
            return row.after
        return NOTE_PREFIX.get(row.outcome, "") + row.note
