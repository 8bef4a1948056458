"""The examples of a text dataset as a table, over the caption filter proxy (virtualized: rows drawn on demand)."""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt, Signal
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView

from ..models.example_model import (COL_ASSISTANT, COL_FORMAT, COL_SYSTEM, COL_TOKENS, COL_TURNS, COL_USER,
                                    COL_WHERE, ExampleModel)
from ..models.filter_proxy import CaptionFilterProxy

# Widths that show a file name with its line, a format name, and a count, without cutting them.
_WIDTHS = {COL_WHERE: 150, COL_FORMAT: 78, COL_SYSTEM: 140, COL_TURNS: 52, COL_TOKENS: 70}


class ExampleTable(QTableView):
    """Rows of the example model through a filter; emits ``currentRowChanged`` with the source row."""

    currentRowChanged = Signal(int)  # source row, -1 when none

    def __init__(self, model: ExampleModel, parent=None) -> None:
        super().__init__(parent)
        self.source = model
        self.proxy = CaptionFilterProxy.over(model, self)
        self.setModel(self.proxy)
        self.setObjectName("exampleTable")
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        # Unsorted at first: the files' own order, which is the order training reads.
        self.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.setSortingEnabled(True)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        self.setShowGrid(False)
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 10)
        header = self.horizontalHeader()
        header.setStretchLastSection(False)
        for column in range(model.columnCount()):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
        for column in (COL_USER, COL_ASSISTANT):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)
        for column, width in _WIDTHS.items():
            self.setColumnWidth(column, width)
        self.selectionModel().currentChanged.connect(self._current_changed)

    def show_tokens(self, visible: bool) -> None:
        """The token column is shown once counts are known."""
        self.setColumnHidden(COL_TOKENS, not visible)

    def selected_rows(self) -> list[int]:
        """Source rows of the selected examples."""
        return sorted({self.proxy.mapToSource(i).row() for i in self.selectionModel().selectedRows()})

    def filtered_rows(self) -> list[int]:
        """Source rows the filter shows."""
        return sorted(self.proxy.mapToSource(self.proxy.index(r, 0)).row() for r in range(self.proxy.rowCount()))

    def current_row(self) -> int:
        """The source row of the current example (-1: none)."""
        current = self.currentIndex()
        return self.proxy.mapToSource(current).row() if current.isValid() else -1

    def select_source_row(self, row: int) -> bool:
        """Make ``row`` current and selected and scroll to it; False when the filter hides it."""
        index = self.proxy.mapFromSource(self.source.index(row, COL_WHERE))
        if not index.isValid():
            return False
        flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        self.selectionModel().setCurrentIndex(index, flags)
        self.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)
        return True

    def step(self, delta: int) -> None:
        """Make the example ``delta`` rows down (up when negative) current, in the table's order."""
        row = self.currentIndex().row() + delta if self.currentIndex().isValid() else 0
        if 0 <= row < self.proxy.rowCount():
            self.select_source_row(self.proxy.mapToSource(self.proxy.index(row, 0)).row())

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self.currentRowChanged.emit(self.proxy.mapToSource(current).row() if current.isValid() else -1)
