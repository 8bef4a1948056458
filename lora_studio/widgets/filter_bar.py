"""The filter bar above the grid: text/regex search, missing caption, tag, problems."""

from __future__ import annotations

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QLineEdit, QToolButton, QWidget

from ..models.filter_proxy import Filter
from ..resources import icon


class FilterBar(QWidget):
    """Emits ``filterChanged`` (debounced while typing) with the combined ``Filter``.

    ``subject`` is what the text matches and ``noun`` what the rows are ("images"); a text
    dataset's bar has no "No caption" box (``empty_label`` None).
    """

    filterChanged = Signal(object)

    def __init__(self, parent=None, subject: str = "caption or file name", noun: str = "images",
                 empty_label: str | None = "No caption") -> None:
        super().__init__(parent)
        self.noun = noun
        self.search = QLineEdit(self)
        self.search.setPlaceholderText(f"Filter by {subject}  (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self._search_icon = self.search.addAction(icon("search"), QLineEdit.ActionPosition.LeadingPosition)
        self.regex = QCheckBox("Regex", self)
        self.missing = QCheckBox(empty_label or "", self)
        self.problems = QCheckBox("Problems", self)
        self.tag_label = QLabel("", self)
        self.tag_label.setObjectName("hint")
        self.clear_tag = QToolButton(self)
        self.clear_tag.setText("✕")
        self.clear_tag.setToolTip("Stop filtering by this tag")
        self.clear_tag.setAutoRaise(True)
        self.count = QLabel("", self)
        self.count.setObjectName("hint")
        self._tag = ""
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        self.search.setMinimumWidth(220)
        self.search.setMaximumWidth(460)
        layout.addWidget(self.search, 1)
        for widget in (self.regex, self.missing, self.problems, self.tag_label, self.clear_tag):
            layout.addWidget(widget)
        layout.addStretch(1)
        layout.addWidget(self.count)
        self.tag_label.hide()
        self.clear_tag.hide()
        self.missing.setVisible(empty_label is not None)
        self._debounce = QTimer(self, singleShot=True, interval=150)
        self._debounce.timeout.connect(self._emit)
        self.search.textChanged.connect(self._debounce.start)
        for box in (self.regex, self.missing, self.problems):
            box.toggled.connect(self._emit)
        self.clear_tag.clicked.connect(lambda: self.set_tag(""))

    def retint(self) -> None:
        """Redraw the search icon after a theme change."""
        self._search_icon.setIcon(icon("search"))

    def set_tag(self, tag: str) -> None:
        """Show only captions with ``tag`` ('' clears it)."""
        self._tag = tag
        self.tag_label.setText(f"Tag: {tag}" if tag else "")
        self.tag_label.setVisible(bool(tag))
        self.clear_tag.setVisible(bool(tag))
        self._emit()

    def current(self) -> Filter:
        """The filter the controls describe."""
        return Filter(self.search.text(), self.regex.isChecked(), self.missing.isChecked(), self._tag,
                      self.problems.isChecked())

    def _emit(self) -> None:
        self._debounce.stop()
        self.filterChanged.emit(self.current())

    def show_count(self, shown: int, total: int, error: str | None = None) -> None:
        """'120 of 2,000 images' (or the filter's error)."""
        noun = self.noun
        self.count.setText(error or (f"{shown:,} of {total:,} {noun}" if shown != total else f"{total:,} {noun}"))
