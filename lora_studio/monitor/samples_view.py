"""Samples of a run: a grid of steps (newest first) by prompts; click to enlarge, select two to
compare. Images load in the background (the grid's ThumbnailLoader); a language model's text
answers come inside their `sample` events, shown as cards of text."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton,
                               QSizePolicy, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from ..workers.thumbnails import ThumbnailLoader
from .event_fields import event_int

CELL = 132
TEXT_CELL_WIDTH = 300  # a text answer's card: wide enough for a sentence per line
TEXT_ROLE = Qt.ItemDataRole.UserRole + 1  # a text sample's whole answer


class SamplesView(QWidget):
    """The samples of one run, fed with its `sample` events."""

    def __init__(self, thumbnails: ThumbnailLoader, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.thumbnails = thumbnails
        self.run_dir: Path | None = None
        self.steps: list[int] = []
        self.prompts: dict[int, str] = {}
        self.cells: dict[str, tuple[int, int]] = {}
        self.table = QTableWidget(self)
        self.table.setObjectName("samplesGrid")
        self.table.setIconSize(QSize(CELL - 8, CELL - 8))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.verticalHeader().setDefaultSectionSize(CELL)
        self.table.horizontalHeader().setDefaultSectionSize(CELL + 20)
        self.table.cellDoubleClicked.connect(self._enlarge_cell)
        self.compare_button = QPushButton("Compare selected", self)
        self.compare_button.setToolTip("Select two samples (Ctrl+click) to see them side by side")
        self.compare_button.clicked.connect(self.compare_selected)
        self.compare_button.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.empty = QLabel("No samples yet. Set sample_prompts and sample_every_n_steps to see the LoRA's progress.",
                            self)
        self.empty.setWordWrap(True)
        bar = QHBoxLayout()
        bar.addWidget(self.empty, 1)
        bar.addStretch(0)
        bar.addWidget(self.compare_button, 0, Qt.AlignmentFlag.AlignRight)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.table, 1)
        thumbnails.signals.ready.connect(self._thumbnail_ready)

    def set_run(self, run_dir: Path | None) -> None:
        """Show another run's samples (cleared until its events arrive)."""
        self.run_dir = run_dir
        self.steps, self.prompts, self.cells = [], {}, {}
        self.table.clear()
        self.table.setRowCount(0)
        self.table.setColumnCount(0)
        self.empty.setVisible(True)

    def add_samples(self, events: list[dict]) -> None:
        """Place `sample` events in the grid (newest step on top)."""
        for event in events:
            step, index = event_int(event, "step"), event_int(event, "prompt_index") or 0
            if event.get("kind") != "sample" or self.run_dir is None or step is None or index < 0:
                continue
            self.prompts.setdefault(index, str(event.get("prompt", "")))
            if step not in self.steps:
                self.steps.append(step)
                self.steps.sort(reverse=True)
                self.table.insertRow(self.steps.index(step))
                self._renumber()
            if self.table.columnCount() <= index:
                self.table.setColumnCount(index + 1)
            # A text card's column says its prompt; an image column stays narrow (the prompt is in its tooltip).
            header = QTableWidgetItem(f"#{index + 1} {self.prompts[index][:40]}" if event.get("media") == "text"
                                      else f"#{index + 1}")
            header.setToolTip(self.prompts[index])
            self.table.setHorizontalHeaderItem(index, header)
            path = self.run_dir / str(event.get("path", ""))
            item = QTableWidgetItem()
            item.setData(Qt.ItemDataRole.UserRole, str(path))
            item.setToolTip(f"step {step}: {self.prompts[index]}")
            self.table.setItem(self.steps.index(step), index, item)
            self.cells[str(path)] = (step, index)
            if event.get("media") == "text":
                self._show_text(item, index, str(event.get("text", "")))
            else:
                self._request(path, item)
        self.empty.setVisible(not self.steps)

    def _show_text(self, item: QTableWidgetItem, column: int, answer: str) -> None:
        """A text answer as a card: the first lines in the cell, all of it in the tooltip and when enlarged."""
        item.setText(answer.strip() or "(empty answer)")
        item.setData(TEXT_ROLE, answer)
        item.setTextAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        item.setToolTip(f"{item.toolTip()}\n\n{answer.strip()[:600]}")
        self.table.setWordWrap(True)
        self.table.setColumnWidth(column, TEXT_CELL_WIDTH)

    def _renumber(self) -> None:
        self.table.setVerticalHeaderLabels([f"step {s}" for s in self.steps])

    def _request(self, path: Path, item: QTableWidgetItem) -> None:
        try:
            stat = path.stat()
        except OSError:
            return
        pixmap = self.thumbnails.pixmap(path, stat.st_size, stat.st_mtime_ns)
        if pixmap is not None:
            item.setIcon(QIcon(pixmap))

    def _thumbnail_ready(self, path: str, image: QImage) -> None:
        where = self.cells.get(path)
        if where is None:
            return
        item = self.table.item(self.steps.index(where[0]), where[1])
        if item is not None:
            item.setIcon(QIcon(QPixmap.fromImage(image)))

    def _enlarge_cell(self, row: int, column: int) -> None:
        item = self.table.item(row, column)
        if item is not None:
            self._show([item])

    def compare_selected(self) -> None:
        """Side by side: the selected samples (two steps of one prompt, or two prompts)."""
        items = [i for i in self.table.selectedItems() if i.data(Qt.ItemDataRole.UserRole)][:2]
        if items:
            self._show(items)

    def _show(self, items: list[QTableWidgetItem]) -> QDialog:
        captions = [item.toolTip().split("\n", 1)[0] for item in items]
        if all(item.data(TEXT_ROLE) is not None for item in items):
            return show_texts(self, [str(item.data(TEXT_ROLE)) for item in items], captions)
        return show_images(self, [Path(item.data(Qt.ItemDataRole.UserRole)) for item in items], captions)


def _side_by_side(parent: QWidget, captions: list[str], make_body) -> QDialog:
    """A non-modal dialog with one column per sample: ``make_body(dialog, index)`` above its caption."""
    dialog = QDialog(parent)
    dialog.setWindowTitle("Samples")
    row = QHBoxLayout(dialog)
    for index, caption in enumerate(captions):
        column = QVBoxLayout()
        text = QLabel(caption, dialog)
        text.setWordWrap(True)
        column.addWidget(make_body(dialog, index), 1)
        column.addWidget(text)
        row.addLayout(column)
    dialog.setModal(False)
    dialog.show()
    return dialog


def show_texts(parent: QWidget, texts: list[str], captions: list[str]) -> QDialog:
    """A dialog with the text answers side by side, each with its caption (step and prompt)."""
    def body(dialog: QDialog, index: int) -> QWidget:
        view = QPlainTextEdit(texts[index], dialog)
        view.setReadOnly(True)
        view.setMinimumSize(360, 300)
        return view

    return _side_by_side(parent, captions, body)


def show_images(parent: QWidget, paths: list[Path], captions: list[str]) -> QDialog:
    """A dialog with the images at up to 512 px each, with their captions."""
    def body(dialog: QDialog, index: int) -> QWidget:
        picture = QLabel(dialog)
        pixmap = QPixmap(str(paths[index]))
        if pixmap.isNull():
            picture.setText(f"{paths[index].name} cannot be shown")
        else:
            picture.setPixmap(pixmap.scaled(512, 512, Qt.AspectRatioMode.KeepAspectRatio,
                                            Qt.TransformationMode.SmoothTransformation))
        return picture

    return _side_by_side(parent, captions, body)
