"""The log pane: the tail of `train.log`, bounded in memory, with search."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QFontDatabase, QTextDocument
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from .log_tail import LogTail

MAX_LINES = 20_000  # older lines scroll out; the file keeps everything


class LogView(QWidget):
    """Shows a run's log as it grows; stays responsive on a 100 MB log."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tail: LogTail | None = None
        self.text = QPlainTextEdit(self)
        self.text.setObjectName("logText")
        self.text.setReadOnly(True)
        self.text.setMaximumBlockCount(MAX_LINES)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search the log…")
        self.search.setClearButtonEnabled(True)
        self.search.returnPressed.connect(self.find_next)
        self.status = QLabel(self)
        next_button = QPushButton("Find next", self)
        next_button.clicked.connect(self.find_next)
        bar = QHBoxLayout()
        bar.addWidget(self.search, 1)
        bar.addWidget(next_button)
        bar.addWidget(self.status)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.text, 1)

    def set_log(self, path: Path | None) -> None:
        """Follow another log file (None clears the view)."""
        self.text.clear()
        self.tail = LogTail(path) if path else None
        self.refresh()

    def refresh(self) -> int:
        """Append new lines; keeps the view at the bottom when it was there. Returns bytes read."""
        if self.tail is None:
            return 0
        new = self.tail.read_new()
        if new:
            bar = self.text.verticalScrollBar()
            at_bottom = bar.value() >= bar.maximum() - 2
            self.text.appendPlainText(new)
            if at_bottom:
                bar.setValue(bar.maximum())
        return self.tail.bytes_read

    def find_next(self) -> bool:
        """Select the next occurrence of the search text (wrapping round)."""
        needle = self.search.text()
        if not needle:
            return False
        found = self.text.find(needle)
        if not found:
            cursor = self.text.textCursor()
            cursor.movePosition(cursor.MoveOperation.Start)
            self.text.setTextCursor(cursor)
            found = self.text.find(needle, QTextDocument.FindFlag(0))
        self.status.setText("" if found else "not found")
        return found
