"""The Runs page's Files tab: what a run handed over (its finished LoRA files, each named by where it
loads) above its checkpoints, newest first; Copy path for any of them, and Resume from a checkpoint.

The rows are the selected run's alone: choosing another run empties the list before it is filled
again, so a checkpoint of the run shown before can never be resumed into this one. The finished
files come from the trainer's ``export`` events (what it wrote, at which step), the checkpoints
from the folder listing (``trainer.checkpoint``).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QHBoxLayout, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from trainer.checkpoint import list_checkpoints

from ..boxes import push_button
from .run_file_rows import checkpoint_text, export_text

# Item data: the path a row stands for, and whether it is a checkpoint (which Resume can start from).
PATH_ROLE = Qt.ItemDataRole.UserRole
CHECKPOINT_ROLE = Qt.ItemDataRole.UserRole + 1
RESUME_TIP = "Continue the run from the checkpoint selected above (not necessarily its newest)"


class RunFilesView(QWidget):
    """The finished files and the checkpoints of one run, with Copy path and Resume from this checkpoint."""

    resumeFrom = Signal(str)  # the checkpoint folder to continue the run from

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.run_dir: Path | None = None
        self._exports: list[dict] = []
        self.list = QListWidget(self)
        self.list.setObjectName("runFilesList")
        self.list.currentItemChanged.connect(lambda *_: self._update_buttons())
        self.copy_button = push_button("Copy path", self, self._copy_path, tip="Copy the selected file's path")
        self.resume_button = push_button("Resume from this checkpoint", self, self._resume, tip=RESUME_TIP)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.resume_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self._update_buttons()

    def show_run(self, run_dir: Path | None) -> None:
        """Show ``run_dir``'s files (none yet: its events arrive through :meth:`add_events`)."""
        self.run_dir = run_dir
        self._exports = []
        self.refresh()

    def add_events(self, events: list[dict]) -> None:
        """New events of the shown run: an export or a checkpoint among them changes the list."""
        exports = [e for e in events if e.get("kind") == "export" and e.get("path")]
        self._exports.extend(exports)
        if exports or any(e.get("kind") == "checkpoint" for e in events):
            self.refresh()

    def refresh(self) -> None:
        """List the finished files in the order the trainer wrote them, then the complete checkpoints, newest first."""
        selected = self._selected_path()
        self.list.clear()
        if self.run_dir is None:
            self._update_buttons()
            return
        latest = {event["path"]: event for event in self._exports}  # a file written twice: its last writing
        for name, event in latest.items():
            path = self.run_dir / name
            self._add_row(export_text(path, event), path, checkpoint=False)
        for folder in reversed(list_checkpoints(self.run_dir)):
            self._add_row(checkpoint_text(folder), folder, checkpoint=True)
        for row in range(self.list.count()):
            if self.list.item(row).data(PATH_ROLE) == selected:
                self.list.setCurrentRow(row)
        self._update_buttons()

    def rows(self) -> list[str]:
        """The rows' texts, top to bottom (what the tab shows)."""
        return [self.list.item(row).text() for row in range(self.list.count())]

    def _add_row(self, text: str, path: Path, checkpoint: bool) -> None:
        item = QListWidgetItem(text, self.list)
        item.setData(PATH_ROLE, str(path))
        item.setData(CHECKPOINT_ROLE, checkpoint)
        item.setToolTip(str(path))

    def _selected_path(self) -> str | None:
        item = self.list.currentItem()
        return item.data(PATH_ROLE) if item is not None else None

    def _update_buttons(self) -> None:
        item = self.list.currentItem()
        self.copy_button.setEnabled(item is not None)
        self.resume_button.setEnabled(item is not None and bool(item.data(CHECKPOINT_ROLE)))

    def _copy_path(self) -> None:
        path = self._selected_path()
        if path is not None:
            QGuiApplication.clipboard().setText(path)

    def _resume(self) -> None:
        item = self.list.currentItem()
        if item is not None and item.data(CHECKPOINT_ROLE):
            self.resumeFrom.emit(item.data(PATH_ROLE))
