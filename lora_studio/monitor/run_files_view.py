"""The Runs page's Files tab: what a run handed over (its finished LoRA files, each with what loads
it) above its checkpoints, newest first; Copy path, Show in folder and Copy to… (into ComfyUI's
LoRA folder, say) for any of them (also on a right click; a double click shows the folder), and
Resume from a checkpoint.

The rows are the selected run's alone: choosing another run empties the list before it is filled
again, so a checkpoint of the run shown before can never be resumed into this one. The finished
files come from the trainer's ``export`` events (what it wrote, at which step), the checkpoints
from the folder listing (``trainer.checkpoint``).
"""

from __future__ import annotations

import functools
from pathlib import Path

from PySide6.QtCore import QPoint, Qt, QUrl, Signal
from PySide6.QtGui import QAction, QDesktopServices, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QHeaderView, QLabel, QMenu, QMessageBox, QSizePolicy,
                               QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from trainer.checkpoint import list_checkpoints

from ..boxes import push_button
from ..settings import Settings
from ..storage.file_ops import copy_into
from ..workers.tasks import TaskRunner
from .run_file_rows import FileRow, checkpoint_row, export_row

COLUMNS = ("File", "Loads in", "Step", "Saved", "Size")
# Item data: the path Copy path copies, and a checkpoint's folder (which Resume starts from).
PATH_ROLE = Qt.ItemDataRole.UserRole
CHECKPOINT_ROLE = Qt.ItemDataRole.UserRole + 1
COPY_NAME_ROLE = Qt.ItemDataRole.UserRole + 2
FINISHED_GROUP = "Finished"
CHECKPOINT_GROUP = "Checkpoints (resume from any)"
NO_FILES = "nothing yet: the finished LoRA appears here when the run completes"
COPY_TIP = ("Copy the selected file into a folder: ComfyUI's models/loras, A1111's models/Lora, a share "
            "(the last folder is remembered)")
FOLDER_TIP = "Open the folder that holds the selected file in the file manager"
RESUME_TIP = "Continue the run from the checkpoint selected above (not necessarily its newest)"


class RunFilesView(QWidget):
    """The finished files and the checkpoints of one run, with Copy path and Resume from this checkpoint."""

    resumeFrom = Signal(str)  # the checkpoint folder to continue the run from

    def __init__(self, runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.run_dir: Path | None = None
        self._exports: list[dict] = []
        self.tree = QTreeWidget(self)
        self.tree.setObjectName("runFilesTree")
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for index in range(1, len(COLUMNS)):
            header.setSectionResizeMode(index, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.currentItemChanged.connect(lambda *_: self._update_buttons())
        self.tree.itemDoubleClicked.connect(lambda *_: self._show_in_folder())
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        copy_key = QAction("Copy path", self.tree)  # Ctrl+C in the list copies the path, as in a file manager
        copy_key.setShortcut(QKeySequence.StandardKey.Copy)
        copy_key.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        copy_key.triggered.connect(self._copy_path)
        self.tree.addAction(copy_key)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        self.copy_button = push_button("Copy path", self, self._copy_path, tip="Copy the selected file's path")
        self.folder_button = push_button("Show in folder", self, self._show_in_folder, tip=FOLDER_TIP)
        self.copy_to_button = push_button("Copy to…", self, self._choose_copy_folder, tip=COPY_TIP)
        self.resume_button = push_button("Resume from this checkpoint", self, self._resume, tip=RESUME_TIP)
        self.copy_note = QLabel(self)  # what the last Copy to… did; wrapped, a long path never widens the pane
        self.copy_note.setObjectName("hint")
        self.copy_note.setWordWrap(True)
        self.copy_note.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # a path has no spaces
        self.copy_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.copy_note.hide()
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (self.copy_button, self.folder_button, self.copy_to_button, self.resume_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.copy_note)
        layout.addLayout(buttons)
        self._update_buttons()

    def show_run(self, run_dir: Path | None) -> None:
        """Show ``run_dir``'s files (none yet: its events arrive through :meth:`add_events`)."""
        self.run_dir = run_dir
        self._exports = []
        self.copy_note.hide()  # it spoke of the run shown before
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
        self.tree.clear()
        if self.run_dir is not None:
            latest = {event["path"]: event for event in self._exports}  # a file written twice: its last writing
            self._add_group(FINISHED_GROUP, [export_row(self.run_dir, event) for event in latest.values()], selected)
            checkpoints = [row for folder in reversed(list_checkpoints(self.run_dir))
                           if (row := checkpoint_row(folder)) is not None]
            if checkpoints:
                self._add_group(CHECKPOINT_GROUP, checkpoints, selected)
        self._update_buttons()

    def rows(self) -> list[tuple[str, ...]]:
        """The file rows' cells under their groups, top to bottom (what the tab shows)."""
        return [tuple(item.text(c) for c in range(len(COLUMNS))) for item in self._file_items()]

    def select_row(self, index: int) -> None:
        """Make the ``index``-th file row (counted as :meth:`rows` counts) the current one."""
        self.tree.setCurrentItem(self._file_items()[index])

    def _file_items(self) -> list[QTreeWidgetItem]:
        """The rows that stand for a file (not the headings, not the hints), top to bottom."""
        groups = (self.tree.topLevelItem(g) for g in range(self.tree.topLevelItemCount()))
        return [group.child(i) for group in groups for i in range(group.childCount()) if group.child(i).data(0, PATH_ROLE)]

    def _add_group(self, title: str, rows: list[FileRow], selected: str | None) -> None:
        group = QTreeWidgetItem(self.tree, [title])
        group.setFlags(Qt.ItemFlag.ItemIsEnabled)  # a heading: not selectable, nothing to copy
        font = group.font(0)
        font.setBold(True)
        group.setFont(0, font)
        group.setFirstColumnSpanned(True)
        for row in rows:
            item = QTreeWidgetItem(group, list(row.cells()))
            item.setData(0, PATH_ROLE, str(row.path))
            item.setData(0, CHECKPOINT_ROLE, str(row.checkpoint) if row.checkpoint else None)
            item.setData(0, COPY_NAME_ROLE, row.copy_as)
            item.setToolTip(0, str(row.path))
            for column in (2, 4):
                item.setTextAlignment(column, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if str(row.path) == selected:
                self.tree.setCurrentItem(item)
        if not rows:
            hint = QTreeWidgetItem(group, [NO_FILES])
            hint.setFlags(Qt.ItemFlag.NoItemFlags)
            hint.setFirstColumnSpanned(True)
        group.setExpanded(True)

    def _selected_path(self) -> str | None:
        item = self.tree.currentItem()
        return item.data(0, PATH_ROLE) if item is not None else None

    def _update_buttons(self) -> None:
        item = self.tree.currentItem()
        for button in (self.copy_button, self.folder_button, self.copy_to_button):
            button.setEnabled(item is not None and bool(item.data(0, PATH_ROLE)))
        self.resume_button.setEnabled(item is not None and bool(item.data(0, CHECKPOINT_ROLE)))

    def _context_menu(self, position: QPoint) -> None:
        """The buttons' actions on the row under the pointer."""
        item = self.tree.itemAt(position)
        if item is None or not item.data(0, PATH_ROLE):
            return
        self.tree.setCurrentItem(item)
        menu = QMenu(self)
        for button in (self.copy_button, self.folder_button, self.copy_to_button, self.resume_button):
            menu.addAction(button.text(), button.click).setEnabled(button.isEnabled())
        menu.popup(self.tree.viewport().mapToGlobal(position))

    def _copy_path(self) -> None:
        path = self._selected_path()
        if path:
            QGuiApplication.clipboard().setText(path)

    def _show_in_folder(self) -> None:
        """The file manager on the folder holding the selected file (a folder row: that folder itself)."""
        path = self._selected_path()
        if path:
            folder = Path(path) if Path(path).is_dir() else Path(path).parent
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def _choose_copy_folder(self) -> None:
        start = Settings().copy_folder or str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Copy to folder", start)
        if folder:
            self.copy_to(Path(folder))

    def copy_to(self, folder: Path) -> None:
        """Copy the selected file (or adapter folder) into ``folder`` in a worker; a file of that name
        there is replaced, or both are kept, as the user says."""
        item = self.tree.currentItem()
        if item is None or not item.data(0, PATH_ROLE):
            return
        source, name = Path(item.data(0, PATH_ROLE)), str(item.data(0, COPY_NAME_ROLE))
        if not source.exists():
            self._note(f"{source.name} is not there any more: it was moved or deleted")
            return
        replace = False
        if (folder / name).exists():
            box = QMessageBox(QMessageBox.Icon.Question, "Copy to folder", f"{folder} already has {name}. Replace it "
                              "with this one, or keep both (this one gets a number)?", parent=self)
            box.setObjectName("copyClashPrompt")
            replace_button = box.addButton("Replace", QMessageBox.ButtonRole.AcceptRole)
            box.addButton("Keep both", QMessageBox.ButtonRole.ActionRole)
            box.addButton(QMessageBox.StandardButton.Cancel)
            box.exec()
            if box.clickedButton() is box.button(QMessageBox.StandardButton.Cancel):
                return
            replace = box.clickedButton() is replace_button
        self._note(f"Copying {name} to {folder}…")
        self.runner.start(functools.partial(copy_into, folder, source, name=name, replace=replace), owner=self,
                          on_done=lambda copied: self._copied(folder, copied),
                          on_error=lambda message: self._note(f"Not copied to {folder}: {message}"))

    def _copied(self, folder: Path, copied: Path) -> None:
        Settings().copy_folder = str(folder)
        self._note(f"Copied to {copied}")

    def _note(self, text: str) -> None:
        self.copy_note.setText(text)
        self.copy_note.setToolTip(text)
        self.copy_note.show()

    def _resume(self) -> None:
        item = self.tree.currentItem()
        if item is not None and item.data(0, CHECKPOINT_ROLE):
            self.resumeFrom.emit(item.data(0, CHECKPOINT_ROLE))
