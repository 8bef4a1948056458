"""The log pane: the tail of `train.log`, bounded in memory, with search; for a run over several nodes,
a choice of node (each node's torchrun writes its own file in the run folder: `train.node2.log` ...)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QFontDatabase, QTextDocument
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit, QPushButton, QVBoxLayout,
                               QWidget)

from trainer.rundir import LOG_FILE

from .log_tail import LogTail

MAX_LINES = 20_000  # older lines scroll out; the file keeps everything


class LogView(QWidget):
    """Shows a run's log as it grows; stays responsive on a 100 MB log."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tail: LogTail | None = None
        self.folder: Path | None = None
        self._sources: tuple[tuple[str, str], ...] = ()
        self.node = QComboBox(self)  # shown for a run over several nodes only
        self.node.setObjectName("logNode")
        self.node.setToolTip("Each node's output: torchrun and the trainer's processes on that node")
        self.node.currentIndexChanged.connect(lambda _index: self._node_chosen())
        self.node.hide()
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
        bar.addWidget(self.node)
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

    def follow_run(self, folder: Path | None, sources: list[tuple[str, str]] | None = None) -> None:
        """Follow the log of the run in ``folder``: its ``train.log``, or for a run over several nodes the
        file chosen among ``sources`` ((label, file name) per node, the first node's first). Called on every
        refresh; the same run and nodes change nothing."""
        sources = tuple(sources or ())
        if folder == self.folder and sources == self._sources:
            return
        chosen = self.node.currentData() if folder == self.folder else None
        self.folder, self._sources = folder, sources
        self.node.blockSignals(True)
        self.node.clear()
        for label, name in sources:
            self.node.addItem(label, name)
        index = self.node.findData(chosen) if chosen is not None else -1
        self.node.setCurrentIndex(max(index, 0))
        self.node.blockSignals(False)
        self.node.setVisible(len(sources) > 1)
        wanted = (folder / (self.node.currentData() or LOG_FILE)) if folder is not None else None
        if self.tail is None or wanted is None or self.tail.path != wanted:
            self.set_log(wanted)

    def _node_chosen(self) -> None:
        if self.folder is not None and self.node.currentData():
            self.set_log(self.folder / self.node.currentData())

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
