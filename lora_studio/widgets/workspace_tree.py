"""The workspace browser: folders with image counts, scanned in a worker."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QModelIndex, Signal
from PySide6.QtWidgets import QHeaderView, QTreeView

from ..models.workspace_model import PATH_ROLE, WorkspaceModel
from ..storage.workspace_scan import FolderInfo, scan_workspace
from ..workers.tasks import TaskRunner


class WorkspaceTree(QTreeView):
    """Emits ``datasetChosen`` with a folder path when the user picks one."""

    datasetChosen = Signal(str)
    scanFinished = Signal()
    scanFailed = Signal(str)
    scanStarted = Signal()

    def __init__(self, runner: TaskRunner, parent=None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.tree_model = WorkspaceModel(self)
        self.setModel(self.tree_model)
        self.setUniformRowHeights(True)
        self.setAlternatingRowColors(False)
        self.header().setStretchLastSection(False)
        self.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.header().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.root: Path | None = None
        self._task = None
        self.activated.connect(self._chosen)
        self.clicked.connect(self._chosen)

    def scan(self, root: Path) -> None:
        """Scan ``root`` in the background; the tree fills in when done."""
        if self._task is not None:
            self._task.cancel_token.cancel()
        self.root = Path(root)
        self._task = self.runner.start(self._scan, self.root, with_progress=True, on_done=self._scanned,
                                       on_error=self._failed)
        self.scanStarted.emit()

    @staticmethod
    def _scan(root: Path, progress=None, cancel=None):
        return scan_workspace(root, cancel=cancel, progress=progress)

    def cancel_scan(self) -> None:
        """Stop a running scan (a big share can take a while); the tree keeps what it had."""
        if self._task is not None:
            self._task.cancel_token.cancel()

    def _failed(self, message: str) -> None:
        self._task = None
        self.scanFailed.emit(message)

    def _scanned(self, info: FolderInfo) -> None:
        if self.root is None or info.path != self.root:
            return  # a newer workspace was opened meanwhile
        self._task = None
        self._last = info
        self.tree_model.populate(info)
        self.expandToDepth(1)
        self.scanFinished.emit()

    def retint(self) -> None:
        """Rebuild the tree's icons in the current theme (keeps the selection)."""
        info = getattr(self, "_last", None)
        if info is None:
            return
        current = self.currentIndex().data(PATH_ROLE)
        self.tree_model.populate(info)
        self.expandToDepth(1)
        if current:
            self.select_path(current)

    def select_path(self, path: str) -> None:
        """Highlight the folder at ``path`` if it is in the tree."""
        index = self.tree_model.find_path(path)
        if index.isValid():
            self.setCurrentIndex(index)

    def _chosen(self, index: QModelIndex) -> None:
        path = index.siblingAtColumn(0).data(PATH_ROLE)
        if path:
            self.datasetChosen.emit(path)
