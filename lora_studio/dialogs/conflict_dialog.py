"""Conflicts with changes made on disk: keep mine, take theirs, or decide per image."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDialog, QDialogButtonBox, QHeaderView, QLabel,
                               QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout)

from ..editing.conflicts import Choice, Conflict

CHOICE_LABELS = ((Choice.MINE, "Keep mine"), (Choice.THEIRS, "Take theirs"), (Choice.MERGE, "Merge tags"))


class ConflictDialog(QDialog):
    """Lists each image with both captions and a per-image choice.

    A text dataset's dialog lists examples (``item``), shows each side through ``shown``
    (its texts rather than its JSON) and offers no tag merge (``choices``).
    """

    def __init__(self, conflicts: list[Conflict], where: str, parent=None, item: str = "image",
                 choices: tuple[tuple[Choice, str], ...] = CHOICE_LABELS,
                 shown: Callable[[str], str] = lambda value: value, noun: str = "caption") -> None:
        super().__init__(parent)
        self.conflicts = conflicts
        self.choice_labels = choices
        self.setWindowTitle(f"{noun.capitalize()}s changed on disk")
        self.resize(820, 360)
        many = len(conflicts) != 1
        merge = "; “Merge tags” keeps your tags and adds theirs" if any(c is Choice.MERGE for c, _ in choices) else ""
        intro = QLabel(
            f"<b>{len(conflicts)} {noun}{'s were' if many else ' was'} changed in {where} by another program "
            f"or computer while you edited {'them' if many else 'it'} here.</b><br>"
            f"Nothing has been overwritten. Choose what to keep for each {item}{merge}.", self)
        intro.setWordWrap(True)
        intro.setTextFormat(Qt.TextFormat.RichText)
        self.table = QTableWidget(len(conflicts), 4, self)
        self.table.setHorizontalHeaderLabels([item.capitalize(), "Mine (this app)", "Theirs (on disk)", "Keep"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(True)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.ResizeToContents)
        self.combos: list[QComboBox] = []
        for row, conflict in enumerate(conflicts):
            self.table.setItem(row, 0, QTableWidgetItem(conflict.rel))
            for col, text in ((1, shown(conflict.mine)), (2, shown(conflict.theirs))):
                item = QTableWidgetItem(text or "(empty)")
                item.setToolTip(text)
                self.table.setItem(row, col, item)
            combo = QComboBox(self.table)
            for choice, label in choices:
                combo.addItem(label, choice)
            self.table.setCellWidget(row, 3, combo)
            self.combos.append(combo)
        self.table.resizeRowsToContents()
        buttons = QDialogButtonBox(self)
        self.keep_all = QPushButton("Keep all mine", self)
        self.take_all = QPushButton("Take all theirs", self)
        self.apply = QPushButton("Apply choices", self)
        self.apply.setDefault(True)
        buttons.addButton(self.keep_all, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(self.take_all, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(self.apply, QDialogButtonBox.ButtonRole.AcceptRole)
        self.keep_all.clicked.connect(lambda: self._set_all(Choice.MINE))
        self.take_all.clicked.connect(lambda: self._set_all(Choice.THEIRS))
        self.apply.clicked.connect(self.accept)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)

    def _set_all(self, choice: Choice) -> None:
        for combo in self.combos:
            combo.setCurrentIndex([c for c, _ in self.choice_labels].index(choice))
        self.accept()

    def set_choice(self, row: int, choice: Choice) -> None:
        """Choose for one image (used by keyboard users and tests)."""
        self.combos[row].setCurrentIndex([c for c, _ in self.choice_labels].index(choice))

    def settle(self, resolve: Callable[[dict[str, Choice]], None], settled: Callable[[], None],
               closed: Callable[[], None]) -> None:
        """Open (non-blocking); when accepted, ``resolve(choices)`` then ``settled()``; ``closed()`` either way."""

        def accepted() -> None:
            resolve(self.choices())
            settled()

        def finished(_result: int) -> None:
            closed()
            self.deleteLater()

        self.accepted.connect(accepted)
        self.finished.connect(finished)
        self.open()

    def choices(self) -> dict[str, Choice]:
        """The decision for every image."""
        return {c.rel: Choice(combo.currentData()) for c, combo in zip(self.conflicts, self.combos)}
