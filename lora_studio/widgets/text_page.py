"""The dataset tab's page for a text dataset: filter bar, table of examples, the selected one's editor and rendering."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QSplitter, QVBoxLayout, QWidget

from ..models.example_model import ExampleModel
from .chat_preview_view import ChatPreviewView
from .example_editor import ExampleEditor
from .example_table import ExampleTable
from .filter_bar import FilterBar


class TextDatasetPage(QWidget):
    """Holds the widgets; the :class:`~.text_controller.TextDatasetController` fills and wires them."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("textDatasetPage")
        self.model = ExampleModel(self)
        self.filter_bar = FilterBar(self, subject="text, file:line", noun="examples", empty_label=None)
        self.filter_bar.problems.setToolTip("Show only the examples with a problem")
        self.table = ExampleTable(self.model, self)
        self.editor = ExampleEditor(self)
        self.preview = ChatPreviewView(self)
        self.bottom = self._splitter(Qt.Orientation.Horizontal, (self.editor, 1), (self.preview, 1))
        self.splitter = self._splitter(Qt.Orientation.Vertical, (self.table, 2), (self.bottom, 3))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.filter_bar)
        layout.addWidget(self.splitter, 1)
        self.filter_bar.filterChanged.connect(self._filter)
        for signal in (self.table.proxy.rowsInserted, self.table.proxy.rowsRemoved, self.table.proxy.modelReset,
                       self.table.proxy.layoutChanged):
            signal.connect(self.update_count)

    def _splitter(self, orientation: Qt.Orientation, *parts: tuple[QWidget, int]) -> QSplitter:
        """A splitter of ``(widget, stretch)`` parts, none of which can be collapsed to nothing."""
        splitter = QSplitter(orientation, self)
        for index, (widget, stretch) in enumerate(parts):
            splitter.addWidget(widget)
            splitter.setStretchFactor(index, stretch)
        splitter.setChildrenCollapsible(False)
        return splitter

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        """On the first show, give the editor and the rendering half the width each."""
        super().showEvent(event)
        if not getattr(self, "_sized", False):
            self._sized = True
            half = max(1, self.bottom.width() // 2)
            self.bottom.setSizes([half, half])
            total = self.splitter.height()
            self.splitter.setSizes([total * 2 // 5, total - total * 2 // 5])

    def _filter(self, new) -> None:
        self.table.proxy.set_filter(new)
        self.update_count()

    def update_count(self, *_args) -> None:
        """'12 of 200 examples' in the filter bar."""
        self.filter_bar.show_count(self.table.proxy.rowCount(), self.model.rowCount(), self.table.proxy.filter_error)
