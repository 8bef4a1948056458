"""The tag-frequency panel: every tag with its image count; clicking a tag filters."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QHeaderView, QInputDialog, QLineEdit, QMenu, QTableView, QVBoxLayout,
                               QWidget)

from ..models.tag_model import TagFrequencyModel


class TagPanel(QWidget):
    """Searchable table of tags; emits ``tagClicked``."""

    tagClicked = Signal(str)
    removeRequested = Signal(str)  # remove this tag from every caption
    renameRequested = Signal(str, str)  # old, new

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.model = TagFrequencyModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Find a tag…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.proxy.setFilterFixedString)
        self.view = QTableView(self)
        self.view.setModel(self.proxy)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.verticalHeader().setVisible(False)
        self.view.verticalHeader().setDefaultSectionSize(24)
        self.view.setShowGrid(False)
        self.view.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.view.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.view.clicked.connect(self._clicked)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._menu)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.search)
        layout.addWidget(self.view)

    def _menu(self, pos) -> None:
        index = self.view.indexAt(pos)
        if not index.isValid():
            return
        tag = self.model.tag_at(self.proxy.mapToSource(index).row())
        menu = QMenu(self)
        menu.addAction(f"Show images with “{tag}”", lambda: self.tagClicked.emit(tag))
        menu.addAction(f"Rename “{tag}” everywhere…", lambda: self._rename(tag))
        menu.addAction(f"Remove “{tag}” from all captions", lambda: self.removeRequested.emit(tag))
        menu.popup(self.view.viewport().mapToGlobal(pos))

    def _rename(self, tag: str) -> None:
        new, ok = QInputDialog.getText(self, "Rename tag", f"New name for “{tag}”:", text=tag)
        if ok and new.strip() and new.strip() != tag:
            self.renameRequested.emit(tag, new.strip())

    def _clicked(self, index: QModelIndex) -> None:
        source = self.proxy.mapToSource(index)
        self.tagClicked.emit(self.model.tag_at(source.row()))
