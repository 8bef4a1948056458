"""Files in and out of the open dataset: Add Images…, Move to Trash, and files dropped on the window."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, QObject, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

from trainer.wording import plural

from ..storage.file_ops import copy_images_into, move_to_trash
from ..storage.names import is_image
from ..workers.tasks import TaskRunner
from .caption_grid import CaptionGrid
from .dataset_controller import DatasetController
from .status_strip import StatusStrip

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff)"


class FileActions(QObject):
    """Copies images into the open dataset and moves selected ones to the trash; the dataset reloads after."""

    folderDropped = Signal(object)  # a folder dropped on the window: open it as a workspace

    def __init__(self, datasets: DatasetController, grid: CaptionGrid, runner: TaskRunner, status: StatusStrip,
                 parent: QWidget) -> None:
        super().__init__(parent)
        self.datasets, self.grid, self.runner, self.status = datasets, grid, runner, status

    def ask_add_images(self) -> None:
        """Choose image files to copy into the dataset (Add Images…)."""
        if self.datasets.session is None:
            return
        files, _ = QFileDialog.getOpenFileNames(self.parent(), "Add images", str(Path.home()), IMAGE_FILTER)
        self.add_images([Path(f) for f in files])

    def add_images(self, paths: list[Path]) -> None:
        """Copy image files into the dataset folder (in a worker), then reload."""
        session = self.datasets.session
        if session is None:
            return
        if not any(p.is_file() and is_image(p) for p in paths):
            self.status.show_message("Nothing added: drop image files (PNG, JPEG, WebP, BMP, TIFF).", 6000)
            return

        def added(files: list[Path]) -> None:
            self.datasets.reload()
            self.status.show_message(f"Added {plural(len(files), 'image')} to {session.root.name}", 5000)

        self.runner.start(copy_images_into, session.root, paths, on_done=added,
                          on_error=lambda m: self.status.warn("Images not added", m))

    def trash_selected(self) -> None:
        """Move the selected images (and their .txt captions) to the trash."""
        session = self.datasets.session
        if session is None or not self.grid.selected_rows():
            return
        entries = [session.entries[r] for r in self.grid.selected_rows()]
        paths = [e.path for e in entries]
        if session.format == "txt":
            paths += [e.path.with_suffix(".txt") for e in entries]
        failed = move_to_trash(paths)
        self.datasets.reload()
        if failed:
            self.status.warn("Not moved to the trash", "These files could not be moved to the trash (the share may "
                             "not have one; delete them in your file manager): "
                             + ", ".join(p.name for p in failed[:10]))
        else:
            self.status.show_message(f"Moved {plural(len(entries), 'image')} to the trash", 5000)

    @staticmethod
    def accepts(mime: QMimeData) -> bool:
        """Whether a drag carries files or folders (from a file manager)."""
        return mime.hasUrls()

    def drop(self, mime: QMimeData) -> None:
        """A dropped folder opens as a workspace; dropped images are copied into the dataset."""
        paths = [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
        folders = [p for p in paths if p.is_dir()]
        if folders:
            self.folderDropped.emit(folders[0])
        else:
            self.add_images(paths)
