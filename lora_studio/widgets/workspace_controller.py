"""The workspace folder: opening one (chosen, recent, dropped, the demo), its scan, and which dataset opens then."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QMenu, QWidget

from ..paths import app_home
from ..settings import Settings
from ..training.presets import create_demo
from ..workers.tasks import TaskRunner
from .dataset_controller import DatasetController
from .status_strip import StatusStrip
from .workspace_tree import WorkspaceTree


class WorkspaceController(QObject):
    """One workspace at a time: the tree shows its folders, and one of its datasets opens."""

    workspaceChanged = Signal(object)  # the Path of the workspace now open

    def __init__(self, settings: Settings, tree: WorkspaceTree, datasets: DatasetController, runner: TaskRunner,
                 status: StatusStrip, parent: QWidget) -> None:
        super().__init__(parent)
        self.settings, self.tree, self.datasets, self.runner, self.status = settings, tree, datasets, runner, status
        self.workspace: Path | None = None
        self.recent_menu = QMenu("Open &Recent", parent)
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        tree.datasetChosen.connect(lambda p: datasets.open_dataset_folder(Path(p)))
        tree.scanStarted.connect(lambda: status.show_scan_cancel(True))
        tree.scanFinished.connect(lambda: status.show_scan_cancel(False))
        tree.scanFinished.connect(self._scanned)
        tree.scanFailed.connect(lambda m: (status.show_scan_cancel(False), status.show_message(
            m if "cancelled" in m else f"Cannot scan the workspace: {m}")))
        status.scanCancelled.connect(tree.cancel_scan)
        datasets.folderShown.connect(tree.select_path)
        datasets.datasetOpened.connect(self.remember_dataset)

    def ask_workspace(self) -> None:
        """Choose a workspace folder (Open Workspace…)."""
        folder = QFileDialog.getExistingDirectory(self.parent(), "Open workspace", str(self.workspace or Path.home()))
        if folder:
            self.open_workspace(Path(folder))

    def ask_dataset(self) -> None:
        """Choose one dataset folder (Open Dataset Folder…)."""
        folder = QFileDialog.getExistingDirectory(self.parent(), "Open dataset folder",
                                                  str(self.workspace or Path.home()))
        if folder:
            self.datasets.open_dataset_folder(Path(folder))

    def ask_text_file(self) -> None:
        """Choose one .jsonl/.json file of a text dataset (Open Text Dataset File…)."""
        chosen, _ = QFileDialog.getOpenFileName(self.parent(), "Open text dataset file",
                                                str(self.workspace or Path.home()),
                                                "Text datasets (*.jsonl *.json);;All files (*)")
        if chosen:
            self.datasets.open_dataset_folder(Path(chosen))

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent_workspaces()
        for path in recent:
            self.recent_menu.addAction(path).triggered.connect(lambda _=False, p=path: self.open_workspace(Path(p)))
        if not recent:
            self.recent_menu.addAction("No recent workspaces").setEnabled(False)

    def open_workspace(self, path: Path) -> None:
        """Show ``path``'s folders; the last (or first) dataset in it opens when scanned."""
        path = Path(path).resolve()
        if not path.is_dir():
            self.status.warn("Cannot open workspace", f"{path} is not a folder (or is not mounted). "
                             "Choose another folder.")
            return
        self.workspace = path
        self.workspaceChanged.emit(path)
        self.settings.add_recent_workspace(path)
        self.status.show_message(f"Scanning {path}…")
        self.tree.scan(path)

    def _scanned(self) -> None:
        self.status.show_message(f"Workspace {self.workspace}", 4000)
        if self.datasets.root() is not None or self.workspace is None:
            return
        last = self.settings.last_dataset(self.workspace)
        if last and Path(last).exists():  # a folder, or a text dataset's file
            self.datasets.open_dataset_folder(Path(last))
            return
        first = self.tree.tree_model.first_dataset()
        if first:
            self.datasets.open_dataset_folder(Path(first))

    def remember_dataset(self, root: str) -> None:
        """Reopen this dataset (image or text) next time the workspace opens."""
        if self.workspace is not None:
            self.settings.set_last_dataset(self.workspace, Path(root))

    def open_demo(self, root: Path | None = None) -> None:
        """Create the demo workspace in a worker (it may take a while), then open it."""
        root = Path(root) if root else app_home() / "demo-workspace"
        self.status.show_message(f"Creating the demo workspace in {root} (a few seconds)…")
        self.status.show_busy()

        def done(_config) -> None:
            self.status.hide_busy()
            self.open_workspace(root)

        def failed(message: str) -> None:
            self.status.hide_busy()
            self.status.warn("Demo not created", f"Creating the demo workspace in {root} failed: {message}")

        self.runner.start(create_demo, root, on_done=done, on_error=failed)
