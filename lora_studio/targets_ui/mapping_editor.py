"""The path-mapping table of a target: a folder as this desktop sees it -> as the target sees it."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (QAbstractItemView, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QPushButton,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from ..targets import PathMapping, TargetConfigError


class MappingEditor(QWidget):
    """Rows of (desktop folder, target folder); empty rows are ignored."""

    def __init__(self, mappings: tuple[PathMapping, ...] = (), workspace: Path | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.table = QTableWidget(0, 2, self)
        self.table.setObjectName("mappingTable")
        self.table.setHorizontalHeaderLabels(["Folder on this computer", "Same folder on the target"])
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setMinimumHeight(90)
        for mapping in mappings:
            self.add_row(mapping.local, mapping.target)
        add = QPushButton("Add mapping", self)
        add.clicked.connect(lambda: self.add_row(str(self.workspace or ""), ""))
        browse = QPushButton("Choose folder…", self)
        browse.setToolTip("Choose the desktop folder of the selected row (or of a new row)")
        browse.clicked.connect(self._browse)
        remove = QPushButton("Remove", self)
        remove.clicked.connect(self._remove)
        note = QLabel("Example: <tt>Z:\\lora</tt> or <tt>/mnt/vsan/lora</tt> here is <tt>/data/lora</tt> on the "
                      "target. Leave empty when the target sees the same paths.", self)
        note.setWordWrap(True)
        note.setObjectName("hint")
        buttons = QHBoxLayout()
        for button in (add, browse, remove):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addWidget(note)

    def add_row(self, local: str = "", target: str = "") -> int:
        """Append a row and return its index."""
        row = self.table.rowCount()
        self.table.insertRow(row)
        self.table.setItem(row, 0, QTableWidgetItem(local))
        self.table.setItem(row, 1, QTableWidgetItem(target))
        return row

    def _browse(self) -> None:
        row = self.table.currentRow()
        if row < 0:
            row = self.add_row()
        folder = QFileDialog.getExistingDirectory(self, "Folder on this computer", self._text(row, 0) or str(Path.home()))
        if folder:
            self.table.item(row, 0).setText(folder)

    def _remove(self) -> None:
        rows = sorted({index.row() for index in self.table.selectedIndexes()}, reverse=True)
        for row in rows or ([self.table.rowCount() - 1] if self.table.rowCount() else []):
            self.table.removeRow(row)

    def _text(self, row: int, column: int) -> str:
        item = self.table.item(row, column)
        return item.text().strip() if item else ""

    def mappings(self) -> tuple[PathMapping, ...]:
        """The mappings entered; raises TargetConfigError naming the bad row."""
        result = []
        for row in range(self.table.rowCount()):
            local, target = self._text(row, 0), self._text(row, 1)
            if not local and not target:
                continue
            try:
                result.append(PathMapping(local, target))
            except TargetConfigError as exc:
                raise TargetConfigError(f"row {row + 1}: {exc.message}", exc.hint) from None
        return tuple(result)
