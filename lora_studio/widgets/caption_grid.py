"""The caption grid: an icon view and a table view over one filter proxy and selection."""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QSize, Qt, Signal
from PySide6.QtWidgets import QAbstractItemDelegate, QAbstractItemView, QHeaderView, QStackedWidget, QTableView

from ..models.caption_model import COL_CAPTION, COL_FILE, COL_SIZE, COL_STATUS, CaptionModel
from ..models.filter_proxy import CaptionFilterProxy
from .grid_delegate import CaptionDelegate
from .grid_view import ThumbnailGridView

ICON_MODE, TABLE_MODE = 0, 1


class CaptionGrid(QStackedWidget):
    """Shows the dataset as cards or as a table; both views share selection and filter."""

    currentRowChanged = Signal(int)  # source row, -1 when none

    def __init__(self, model: CaptionModel, parent=None) -> None:
        super().__init__(parent)
        self.model = model
        self.proxy = CaptionFilterProxy(self)
        self.proxy.setSourceModel(model)

        self.icon_view = ThumbnailGridView(self)
        self.icon_view.setMouseTracking(True)
        self.icon_view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.icon_view.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed
                                       | QAbstractItemView.EditTrigger.DoubleClicked)
        self.icon_view.setModel(self.proxy)
        self.icon_view.setModelColumn(COL_FILE)
        self.icon_view.setObjectName("iconView")

        self.table_view = QTableView(self)
        self.table_view.setModel(self.proxy)
        self.table_view.setSelectionModel(self.icon_view.selectionModel())
        self.table_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table_view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table_view.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed
                                        | QAbstractItemView.EditTrigger.DoubleClicked)
        # Start unsorted (the folder's order, already by file name): sorting 10,000 rows
        # asks the model for ~150,000 values, which would delay the first paint.
        self.table_view.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.table_view.setSortingEnabled(True)
        self.table_view.setAlternatingRowColors(True)
        self.table_view.setWordWrap(False)
        self.table_view.setShowGrid(False)
        self.table_view.verticalHeader().setVisible(False)
        self.table_view.verticalHeader().setDefaultSectionSize(36)
        self.table_view.setIconSize(QSize(44, 32))
        header = self.table_view.horizontalHeader()
        header.setSectionResizeMode(COL_FILE, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(COL_SIZE, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(COL_CAPTION, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(COL_STATUS, QHeaderView.ResizeMode.Interactive)
        self.table_view.setColumnWidth(COL_FILE, 230)
        self.table_view.setColumnWidth(COL_SIZE, 100)
        self.table_view.setColumnWidth(COL_STATUS, 150)
        self.table_view.setItemDelegateForColumn(COL_CAPTION, CaptionDelegate(self.table_view))
        self.table_view.setObjectName("tableView")

        self.addWidget(self.icon_view)
        self.addWidget(self.table_view)
        self.selection_model().currentChanged.connect(self._current_changed)

    def selection_model(self) -> QItemSelectionModel:
        """The selection shared by both views."""
        return self.icon_view.selectionModel()

    def set_mode(self, mode: int) -> None:
        """Switch between cards (ICON_MODE) and the table (TABLE_MODE)."""
        self.setCurrentIndex(mode)
        current = self.selection_model().currentIndex()
        if current.isValid():
            self.currentWidget().scrollTo(current)

    def mode(self) -> int:
        """ICON_MODE or TABLE_MODE."""
        return self.currentIndex()

    def active_view(self) -> QAbstractItemView:
        """The view on screen."""
        return self.currentWidget()

    # -- scopes ---------------------------------------------------------------------------
    def selected_rows(self) -> list[int]:
        """Source rows of the selected images."""
        rows = {self.proxy.mapToSource(i).row() for i in self.selection_model().selectedIndexes()}
        return sorted(rows)

    def filtered_rows(self) -> list[int]:
        """Source rows the filter shows."""
        proxy = self.proxy
        return sorted(proxy.mapToSource(proxy.index(r, 0)).row() for r in range(proxy.rowCount()))

    def all_rows(self) -> list[int]:
        """Every source row."""
        return list(range(self.model.rowCount()))

    def select_source_row(self, row: int) -> None:
        """Make ``row`` current and selected, and scroll to it."""
        index = self.proxy.mapFromSource(self.model.index(row, COL_FILE))
        if index.isValid():
            self.selection_model().setCurrentIndex(
                index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
            self.active_view().scrollTo(index)

    def edit_current(self) -> None:
        """Open the inline editor on the current image's caption."""
        current = self.selection_model().currentIndex()
        if not current.isValid():
            return
        view = self.active_view()
        column = COL_CAPTION if view is self.table_view else COL_FILE
        view.edit(current.sibling(current.row(), column))

    def finish_editing(self) -> None:
        """Commit and close any open inline editor (before the dataset goes away)."""
        for view in (self.icon_view, self.table_view):
            current = view.currentIndex()
            if not current.isValid():
                continue
            for column in range(self.proxy.columnCount()):
                editor = view.indexWidget(current.siblingAtColumn(column))
                if editor is not None:
                    view.commitData(editor)
                    view.closeEditor(editor, QAbstractItemDelegate.EndEditHint.NoHint)

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self.currentRowChanged.emit(self.proxy.mapToSource(current).row() if current.isValid() else -1)
