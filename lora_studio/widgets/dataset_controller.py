"""The dataset on screen: opening it (with progress and cancel), its session, saving, converting, conflicts.

One :class:`DatasetSession` at a time. The controller creates it when a folder has been
read, ends it when another one replaces it or the window closes, and tells the rest of the
window through signals (``sessionChanged``, ``datasetOpened``), so that the window only wires.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QMenu, QWidget

from ..dialogs.conflict_dialog import ConflictDialog
from ..editing.conflicts import Conflict
from ..editing.session import DatasetSession
from ..gc_control import settle_long_lived_objects
from ..models.caption_model import CaptionModel
from ..storage.dataset import OpenedDataset, open_dataset
from ..storage.text_dataset import OpenedTextDataset, is_text_dataset, open_text_dataset
from ..workers.tasks import FunctionTask, TaskRunner
from ..workers.thumbnails import ThumbnailLoader
from .caption_grid import CaptionGrid
from .detail_pane import DetailPane
from .status_strip import StatusStrip
from .text_controller import TextDatasetController

CONVERT_FORMATS = (("csv", "metadata.csv (filename,prompt)"), ("txt", ".txt files next to images"),
                   ("jsonl", "metadata.jsonl (Hugging Face)"))
# Background work for a new dataset waits for the first paint of the grid, not to compete with it.
SETTLE_MS = 250


def open_any(path: Path, progress=None, cancel=None) -> OpenedDataset | OpenedTextDataset:
    """Read an image dataset, or a text dataset (a .jsonl/.json file or a folder of them without images)."""
    if is_text_dataset(path):
        return open_text_dataset(path, progress, cancel)
    return open_dataset(path, progress=progress, cancel=cancel)


class DatasetController(QObject):
    """Opens dataset folders into the caption model and owns the session of the one on screen."""

    datasetOpened = Signal(str)  # the root of the dataset now on screen
    datasetFailed = Signal(str)  # why a folder could not be opened
    sessionChanged = Signal(object)  # the new DatasetSession, or None once the dataset is closed
    sessionClosing = Signal()  # the dataset on screen is about to close: stop background work on it
    sessionSettled = Signal(object)  # the session, once its grid was painted: time for background work
    folderShown = Signal(str)  # the folder whose dataset is on screen (the workspace tree highlights it)
    conflictsPending = Signal(bool)  # captions changed on disk and here, waiting for the user's choice

    def __init__(self, runner: TaskRunner, thumbnails: ThumbnailLoader, model: CaptionModel, grid: CaptionGrid,
                 detail: DetailPane, status: StatusStrip, parent: QWidget, autosave_ms: int = 1500,
                 poll_ms: int = 2000, text: TextDatasetController | None = None) -> None:
        super().__init__(parent)
        self.runner, self.thumbnails, self.model = runner, thumbnails, model
        self.text = text  # shows the text datasets this controller reads
        self.grid, self.detail, self.status = grid, detail, status
        self.autosave_ms, self.poll_ms = autosave_ms, poll_ms
        self.session: DatasetSession | None = None
        self.conflict_dialog: ConflictDialog | None = None
        self._opening: FunctionTask | None = None  # the dataset open under way, if any
        self._opening_path: Path | None = None
        self.convert_menu = QMenu("&Convert Captions To", parent)
        for fmt, label in CONVERT_FORMATS:
            action = self.convert_menu.addAction(label)
            action.setData(fmt)
            action.triggered.connect(lambda _=False, f=fmt: self.convert_to(f))
        self.convert_menu.setEnabled(False)
        status.openCancelled.connect(self.cancel_opening)

    # -- opening -------------------------------------------------------------------------------
    def open_dataset_folder(self, path: Path) -> None:
        """Read the folder in a worker; the grid shows it when ready.

        The open shows its progress and can be cancelled (a slow share); asking for
        another folder meanwhile cancels it. The dataset on screen stays until the new
        one is read.
        """
        path = Path(path)
        showing = self.root() == path
        if self._opening is not None:
            if self._opening_path == path:
                return  # already on its way
            # Another choice replaces the pending one; going back to the dataset on screen
            # just abandons it.
            self._abandon_open(announce=showing)
        if showing:
            return
        name = path.name or str(path)
        self._opening_path = path
        self.status.show_message(f"Opening {name}…")
        self.status.show_open_cancel(True)
        task: FunctionTask | None = None

        # Each callback checks that its task is still the one wanted: a cancelled or
        # superseded open may still finish (a stat call on a stalled share cannot be
        # interrupted), and its result must not replace what the user chose since.
        def progress(done: int, total: int) -> None:
            if self._opening is task:
                self.status.show_message(f"Opening {name}… {done:,}/{total:,}")

        def done(opened: OpenedDataset | OpenedTextDataset) -> None:
            if self._opening is not task:
                return
            self._open_finished()
            if isinstance(opened, OpenedTextDataset) and self.text is not None:
                self.close_dataset()
                self.folderShown.emit(str(opened.root))
                self.text.show(opened)
            elif isinstance(opened, OpenedDataset):
                self._dataset_ready(opened)

        def failed(message: str) -> None:
            if self._opening is not task:
                return
            if task.cancel_token.cancelled:  # cancelled from elsewhere (the window closing): not an error
                self._abandon_open(announce=True)
                return
            self._open_finished()
            self._dataset_failed(message)

        task = self.runner.start(open_any, path, with_progress=True, on_progress=progress, on_done=done,
                                 on_error=failed)
        self._opening = task

    def cancel_opening(self) -> None:
        """Stop opening a dataset (the Cancel button); the dataset on screen, if any, stays."""
        self._abandon_open(announce=True)

    def _abandon_open(self, announce: bool) -> None:
        if self._opening is None:
            return
        self._opening.cancel_token.cancel()
        name = self._opening_path.name if self._opening_path else ""
        self._open_finished()
        if announce:
            message = f"Opening {name} cancelled"
            root = self.root()
            if root is not None:
                message += f"; {root.name} is still open"
                self.folderShown.emit(str(root))  # the tree shows what is open again
            self.status.show_message(message, 8000)

    def _open_finished(self) -> None:
        self._opening = None
        self._opening_path = None
        self.status.show_open_cancel(False)

    def _dataset_failed(self, message: str) -> None:
        self.status.show_message(message)
        self.datasetFailed.emit(message)
        self.status.warn("Cannot open the dataset", message)

    def root(self) -> Path | None:
        """The folder (or text file) of the dataset on screen, image or text."""
        if self.session is not None:
            return self.session.root
        if self.text is not None and self.text.session is not None:
            return self.text.session.root
        return None

    def _dataset_ready(self, opened: OpenedDataset) -> None:
        self.close_dataset()
        if self.text is not None:
            self.text.close()
        session = DatasetSession(opened, self.runner, self, autosave_ms=self.autosave_ms, poll_ms=self.poll_ms)
        self.session = session
        self.model.set_session(session)
        session.dirtyChanged.connect(lambda _d: self._update_save_state())
        session.saved.connect(lambda m: (self.status.show_message(m, 4000), self._update_save_state(),
                                         self.status.hide_save_progress()))
        session.saveFailed.connect(lambda m: (self.status.hide_save_progress(),
                                              self.status.warn("Captions not saved", m)))
        session.saveProgress.connect(self.status.show_save_progress)
        session.converted.connect(self.status.show_format)
        session.conflictsFound.connect(self._conflicts_found)
        session.message.connect(lambda m: self.status.show_message(m, 8000))
        self.convert_menu.setEnabled(True)
        self.folderShown.emit(str(opened.root))
        self.status.show_format(session.format)
        self.sessionChanged.emit(session)  # the panes fill in before the journal's edits are replayed
        self._update_save_state()
        # Bound to this controller: a closed window's timer must not freeze another window's garbage.
        QTimer.singleShot(SETTLE_MS, self, lambda s=session: self._settled(s))
        recovered = session.replay_journal()
        message = f"Opened {opened.root.name}: {len(opened.entries):,} images, captions in {session.format}"
        if recovered:
            message += f"; recovered {recovered} unsaved edit{'s' if recovered != 1 else ''} from the last session"
        self.status.show_message(message, 8000)
        if self.model.rowCount():
            self.grid.select_source_row(0)
        self.datasetOpened.emit(str(opened.root))

    def _settled(self, session: DatasetSession) -> None:
        if session is not self.session:
            return  # another dataset was opened meanwhile
        self._settle_objects(session)  # after the first paint: no 100 ms GC pauses later
        self.sessionSettled.emit(session)  # the image check first (it feeds the Problems pane), then thumbnails
        self.thumbnails.prefetch([(e.path, e.file_size, e.mtime_ns) for e in session.entries])

    def _settle_objects(self, session: DatasetSession) -> None:
        if session is self.session and not settle_long_lived_objects():
            # Another thread was collecting: try again rather than freeze its garbage.
            QTimer.singleShot(SETTLE_MS, self, lambda: self._settle_objects(session))

    # -- the open dataset ----------------------------------------------------------------------
    def flush_edits(self) -> None:
        """Send what is being typed (in the grid's editor or the detail pane) to the session."""
        self.grid.finish_editing()
        self.detail.commit()

    def close_dataset(self) -> None:
        """Save and close the open dataset (if any)."""
        if self.session is None:
            return
        session = self.session
        self.sessionClosing.emit()  # before the blocking save, which waits for the pool's work
        self.flush_edits()
        session.shutdown()
        self.model.set_session(None)
        self.session = None
        self.convert_menu.setEnabled(False)
        self.sessionChanged.emit(None)
        session.deleteLater()

    def reload(self) -> None:
        """Re-read the folder (in a worker), merging with unsaved edits."""
        if self.text is not None and self.text.session is not None:
            self.text.reload()
        if self.session is not None:
            self.session.reload()

    def save(self) -> None:
        """Save captions (or the text dataset's examples) now."""
        if self.text is not None and self.text.session is not None:
            self.text.save()
        if self.session is not None:
            self.flush_edits()
            self.session.save()

    def convert_to(self, fmt: str) -> None:
        """Write the captions in another format and use it from now on."""
        if self.session is None or fmt == self.session.format:
            return
        self.session.convert(fmt)

    def _update_save_state(self) -> None:
        if self.session is None:
            self.status.show_save_state("")
        elif self.session.pending_conflicts:
            self.status.show_save_state("⚠ Conflicts: not saved")
        elif self.session.is_dirty():
            self.status.show_save_state(f"● {len(self.session.dirty)} unsaved (autosave on)")
        else:
            self.status.show_save_state("✓ All saved")

    # -- conflicts -----------------------------------------------------------------------------
    def _conflicts_found(self, _conflicts: list[Conflict]) -> None:
        self.conflictsPending.emit(True)
        self.status.show_save_state("⚠ Conflicts: not saved")
        self.show_conflicts()

    def show_conflicts(self) -> None:
        """Ask how to settle the captions changed both on disk and here (non-blocking)."""
        if self.session is None or not self.session.pending_conflicts:
            return
        if self.conflict_dialog is not None:
            self.conflict_dialog.raise_()
            return
        where = self.session.store.path.name if self.session.format != "txt" else "the .txt files"
        dialog = ConflictDialog(self.session.pending_conflicts, where, self.parent())
        self.conflict_dialog = dialog
        dialog.settle(self.session.resolve_conflicts,
                      settled=lambda: (self.conflictsPending.emit(False), self._update_save_state()),
                      closed=lambda: setattr(self, "conflict_dialog", None))
