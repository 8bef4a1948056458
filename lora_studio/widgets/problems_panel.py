"""The problems panel: each problem with its file, line, message and what to do."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QListWidget, QListWidgetItem

from ..resources import icon
from ..storage.problems import Problem


REL_ROLE = Qt.ItemDataRole.UserRole + 1
LOCATION_ROLE = Qt.ItemDataRole.UserRole + 2  # (path, line) of a problem in a file, for going to its row


class ProblemsPanel(QListWidget):
    """A list of problems of the open dataset (caption files and images); click to go there."""

    imageChosen = Signal(str)  # rel path of the image a problem is about
    locationChosen = Signal(str, int)  # file and line a problem is about (a text dataset's row)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setAlternatingRowColors(True)
        self.itemClicked.connect(self._clicked)

    def _clicked(self, item: QListWidgetItem) -> None:
        rel = item.data(REL_ROLE)
        if rel:
            self.imageChosen.emit(rel)
        location = item.data(LOCATION_ROLE)
        if location:
            self.locationChosen.emit(*location)

    def show_problems(self, problems: list[Problem], image_problems: dict[str, str]) -> None:
        """Replace the list."""
        self.clear()
        for problem in problems:
            item = QListWidgetItem(icon("error" if problem.is_error else "warning"), str(problem))
            item.setToolTip(str(problem.path) + (f", line {problem.line}" if problem.line else ""))
            if problem.line:
                item.setData(LOCATION_ROLE, (str(problem.path), problem.line))
            self.addItem(item)
        for rel, reason in sorted(image_problems.items()):
            item = QListWidgetItem(icon("error"), f"{rel}: {reason}. It is skipped by training; replace or delete it.")
            item.setData(REL_ROLE, rel)
            self.addItem(item)
        if not self.count():
            self.addItem(QListWidgetItem(icon("check"), "No problems found"))
