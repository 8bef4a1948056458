"""The main window: workspace browser, caption grid, detail pane, tags and problems."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QThreadPool, Qt, QTimer, Signal
from PySide6.QtGui import QActionGroup, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence, QShowEvent, QUndoStack
from PySide6.QtWidgets import (QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox, QProgressBar, QPushButton,
                               QStackedWidget, QToolBar, QVBoxLayout, QWidget)

from .. import APP_NAME
from ..autocaption.hook import AutoCaptionController
from ..dialogs.bulk_dialog import BulkEditDialog
from ..dialogs.conflict_dialog import ConflictDialog
from ..editing.conflicts import Conflict
from ..gc_control import UiThreadCollector, settle_long_lived_objects
from ..editing.session import DatasetSession
from ..models.caption_model import CaptionModel
from ..paths import app_home, thumbnail_cache_dir
from ..resources import clear_icon_cache, icon
from ..settings import Settings
from ..storage.dataset import OpenedDataset, open_dataset
from ..storage.file_ops import copy_images_into, move_to_trash
from ..storage.names import is_image
from ..tags import BulkEdit, Operation
from ..theme import apply_theme
from ..training.presets import create_demo
from ..workers.image_check import ImageCheckTask
from ..workers.tasks import FunctionTask, TaskRunner
from ..workers.thumbnails import ThumbnailLoader
from .actions import create_actions
from .caption_grid import ICON_MODE, TABLE_MODE, CaptionGrid
from .detail_pane import DetailPane
from .dock_layout import fit_side_docks, set_min_widths
from .empty_state import EmptyState
from .filter_bar import FilterBar
from .problems_panel import ProblemsPanel
from .tag_panel import TagPanel
from .workbench import Workbench
from .workspace_tree import WorkspaceTree


class MainWindow(QMainWindow):
    """One workspace at a time; one dataset of it open in the grid."""

    datasetOpened = Signal(str)
    datasetFailed = Signal(str)
    imageCheckDone = Signal()

    def __init__(self, settings: Settings | None = None, autosave_ms: int = 1500, poll_ms: int = 2000) -> None:
        super().__init__()
        self.settings = settings or Settings()
        self.autosave_ms, self.poll_ms = autosave_ms, poll_ms
        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(icon("app"))
        self.setObjectName("MainWindow")
        self.setAcceptDrops(True)
        # Worker threads must never run Python's collector on cycles that hold Qt objects.
        self.collector = UiThreadCollector(self)
        # File work (scans, saves, checks) waits on disks and shares more than on the CPU, so
        # its pool is wider than the core count; thumbnails have their own CPU-sized pool.
        pool = QThreadPool(self)
        pool.setMaxThreadCount(4)
        self.runner = TaskRunner(pool, parent=self)
        self.thumbnails = ThumbnailLoader(thumbnail_cache_dir(), parent=self)
        self.session: DatasetSession | None = None
        self.workspace: Path | None = None
        self.conflict_dialog: ConflictDialog | None = None
        self._check_task: ImageCheckTask | None = None
        self._opening: FunctionTask | None = None  # the dataset open under way, if any
        self._opening_path: Path | None = None
        self._empty_stack = QUndoStack(self)

        self.model = CaptionModel(thumbnails=self.thumbnails, parent=self)
        self.grid = CaptionGrid(self.model, self)
        self.filter_bar = FilterBar(self)
        grid_page = QWidget(self)
        layout = QVBoxLayout(grid_page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.filter_bar)
        layout.addWidget(self.grid, 1)
        self.pages = QStackedWidget(self)
        self.grid_page = grid_page

        self.tree = WorkspaceTree(self.runner, self)
        self.detail = DetailPane(self.runner, self)
        self.tags = TagPanel(self)
        self.problems = ProblemsPanel(self)
        self.docks = {
            "workspace": self._dock("Workspace", self.tree, Qt.DockWidgetArea.LeftDockWidgetArea),
            "tags": self._dock("Tags", self.tags, Qt.DockWidgetArea.LeftDockWidgetArea),
            "details": self._dock("Details", self.detail, Qt.DockWidgetArea.RightDockWidgetArea),
            "problems": self._dock("Problems", self.problems, Qt.DockWidgetArea.BottomDockWidgetArea),
        }
        set_min_widths(self.docks)
        self.resizeDocks([self.docks["workspace"], self.docks["details"]], [260, 380], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["problems"]], [110], Qt.Orientation.Vertical)
        from ..targets_ui.panel import TargetsPanel  # the Targets dock: hidden until Training > Targets…
        self.targets_panel = TargetsPanel(self.runner, lambda: self.workspace, self)
        self.targets_panel.targetsChanged.connect(self._refresh_targets)
        self.docks["targets"] = self._dock("Targets", self.targets_panel, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.docks["targets"].hide()

        self.actions = create_actions(self)
        self.empty_state = EmptyState([self.actions.open_workspace, self.actions.open_demo], self)
        self.pages.addWidget(self.empty_state)
        self.pages.addWidget(grid_page)
        self.workbench = Workbench(self.pages, self.runner, self.thumbnails,
                                   lambda: self.session.root if self.session else None, self)
        self.workbench.captionsShown.connect(self._mode_changed)
        self.setCentralWidget(self.workbench)
        self._build_menus()
        self._build_toolbar()
        self._build_status_bar()
        self._connect()
        self.autocaption = AutoCaptionController(self)  # "Auto-caption…" in Edit menu and toolbar
        self._refresh_targets()

        # Load the CLIP tokenizer's merge table (~0.2 s) off the UI thread, before it is needed.
        from ..tokens import count_tokens
        self.runner.start(count_tokens, "")
        self._tag_timer = QTimer(self, singleShot=True, interval=400)
        self._tag_timer.timeout.connect(self._recount_tags)
        geometry, state = self.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 880)
        if state is not None:
            self.restoreState(state)  # after the geometry: the docks are laid out in the restored size
        self._docks_fitted = False  # the restored docks are checked against the window once, when shown
        self.set_grid_mode(self.settings.grid_mode)
        if self.settings.thumb_size is not None:
            self.grid.icon_view.set_thumb_size(self.settings.thumb_size)
        self.grid.icon_view.thumbSizeChanged.connect(lambda px: setattr(self.settings, "thumb_size", px))
        self._update_actions()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802
        """On the first show, share the width out again if the restored docks did not fit."""
        super().showEvent(event)
        if not self._docks_fitted:
            self._docks_fitted = True
            fit_side_docks(self, self.docks)

    # -- construction ---------------------------------------------------------------------
    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title.lower()}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_menus(self) -> None:
        a = self.actions
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addActions([a.open_workspace, a.open_dataset])
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file_menu.addAction(a.open_demo)
        file_menu.addSeparator()
        train_menu = bar.addMenu("&Training")
        train_menu.addActions([self.workbench.new_training_action, self.workbench.open_config_action])
        train_menu.addAction("&Import kohya Config…", self.workbench.import_kohya)
        train_menu.addSeparator()
        train_menu.addAction("Show &Runs", QKeySequence("Ctrl+3"), self.workbench.show_runs)
        train_menu.addAction("&Targets…", self.targets_panel.reveal)
        file_menu.addActions([a.save, a.reload])
        self.convert_menu = file_menu.addMenu("&Convert Captions To")
        for fmt, label in (("csv", "metadata.csv (filename,prompt)"), ("txt", ".txt files next to images"),
                           ("jsonl", "metadata.jsonl (Hugging Face)")):
            action = self.convert_menu.addAction(label)
            action.setData(fmt)
            action.triggered.connect(lambda _=False, f=fmt: self.convert_to(f))
        file_menu.addSeparator()
        file_menu.addActions([a.add_images, a.trash])
        file_menu.addSeparator()
        file_menu.addAction(a.quit)

        edit_menu = self.edit_menu = bar.addMenu("&Edit")
        self.undo_action = self._empty_stack.createUndoAction(self, "&Undo")
        self.redo_action = self._empty_stack.createRedoAction(self, "&Redo")
        self._undo_shortcuts()
        edit_menu.addActions([self.undo_action, self.redo_action])
        edit_menu.addSeparator()
        edit_menu.addActions([a.edit_caption, a.bulk_edit, a.add_tag, a.prepend_trigger, a.find_replace])
        edit_menu.addSeparator()
        edit_menu.addActions([a.select_all, a.next_image, a.previous_image, a.resolve_conflicts])

        view_menu = bar.addMenu("&View")
        group = QActionGroup(self)
        for action in (a.icon_mode, a.table_mode):
            group.addAction(action)
            view_menu.addAction(action)
        view_menu.addAction(a.focus_filter)
        view_menu.addSeparator()
        for dock in self.docks.values():
            view_menu.addAction(dock.toggleViewAction())
        view_menu.addSeparator()
        theme_menu = view_menu.addMenu("T&heme")
        theme_group = QActionGroup(self)
        for mode in ("system", "light", "dark"):
            action = theme_menu.addAction(mode.capitalize() if mode != "system" else "Follow System")
            action.setCheckable(True)
            action.setChecked(self.settings.theme == mode)
            theme_group.addAction(action)
            action.triggered.connect(lambda _=False, m=mode: self.set_theme(m))

        help_menu = bar.addMenu("&Help")
        help_menu.addAction(a.about)

    def _build_toolbar(self) -> None:
        a = self.actions
        toolbar = QToolBar("Main", self)
        toolbar.setObjectName("toolbar-main")
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.undo_action.setIcon(icon("undo"))
        self.redo_action.setIcon(icon("redo"))
        self.workbench.new_training_action.setIcon(icon("demo"))
        for item in (a.open_workspace, a.save, None, self.undo_action, self.redo_action, None, a.icon_mode, a.table_mode,
                     None, a.bulk_edit, a.find_replace, None, a.reload, None, self.workbench.new_training_action):
            toolbar.addSeparator() if item is None else toolbar.addAction(item)
        for action in (self.undo_action, self.redo_action, a.reload, a.icon_mode, a.table_mode):
            toolbar.widgetForAction(action).setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        self.addToolBar(toolbar)
        self.toolbar = toolbar

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.progress = QProgressBar(self)
        self.progress.setMaximumWidth(180)
        self.progress.setTextVisible(False)
        self.progress.hide()
        self.format_label = QLabel("", self)
        self.save_label = QLabel("", self)
        self.cancel_scan = QPushButton("Cancel scan", self)
        self.cancel_scan.setToolTip("Stop scanning the workspace's folders")
        self.cancel_scan.hide()
        self.cancel_scan.clicked.connect(self.tree.cancel_scan)
        status.addPermanentWidget(self.cancel_scan)
        self.cancel_open = QPushButton("Cancel", self)
        self.cancel_open.setObjectName("cancelOpen")
        self.cancel_open.setToolTip("Stop opening this folder; the dataset on screen stays open")
        self.cancel_open.hide()
        self.cancel_open.clicked.connect(self.cancel_opening)
        status.addPermanentWidget(self.cancel_open)
        for widget in (self.progress, self.format_label, self.save_label):
            status.addPermanentWidget(widget)
        status.showMessage("Open a workspace folder to begin (Ctrl+O)")

    def _connect(self) -> None:
        a = self.actions
        a.open_workspace.triggered.connect(self._ask_workspace)
        a.open_dataset.triggered.connect(self._ask_dataset)
        a.open_demo.triggered.connect(lambda: self.open_demo())
        a.save.triggered.connect(self.save)
        a.reload.triggered.connect(self.reload)
        a.add_images.triggered.connect(self._ask_add_images)
        a.trash.triggered.connect(self.trash_selected)
        a.quit.triggered.connect(self.close)
        a.edit_caption.triggered.connect(self.grid.edit_current)
        a.bulk_edit.triggered.connect(lambda: self.open_bulk_dialog(Operation.ADD_TAG))
        a.add_tag.triggered.connect(lambda: self.open_bulk_dialog(Operation.ADD_TAG))
        a.find_replace.triggered.connect(lambda: self.open_bulk_dialog(Operation.REPLACE))
        a.prepend_trigger.triggered.connect(lambda: self.open_bulk_dialog(Operation.PREPEND_TRIGGER))
        a.select_all.triggered.connect(lambda: self.grid.active_view().selectAll())
        a.resolve_conflicts.triggered.connect(self._show_conflicts)
        a.icon_mode.triggered.connect(lambda: self.set_grid_mode(ICON_MODE))
        a.table_mode.triggered.connect(lambda: self.set_grid_mode(TABLE_MODE))
        a.focus_filter.triggered.connect(lambda: (self.filter_bar.search.setFocus(), self.filter_bar.search.selectAll()))
        a.next_image.triggered.connect(lambda: self._step(1))
        a.previous_image.triggered.connect(lambda: self._step(-1))
        a.about.triggered.connect(self._about)
        self.tree.datasetChosen.connect(lambda p: self.open_dataset_folder(Path(p)))
        self.tree.scanStarted.connect(self.cancel_scan.show)
        self.tree.scanFinished.connect(self.cancel_scan.hide)
        self.tree.scanFinished.connect(self._workspace_scanned)
        self.tree.scanFailed.connect(self.cancel_scan.hide)
        self.tree.scanFailed.connect(lambda m: self.statusBar().showMessage(
            m if "cancelled" in m else f"Cannot scan the workspace: {m}"))
        self.grid.currentRowChanged.connect(self._current_changed)
        self.filter_bar.filterChanged.connect(self._apply_filter)
        self.tags.tagClicked.connect(self.filter_bar.set_tag)
        self.problems.imageChosen.connect(
            lambda rel: self.session is not None and rel in self.session.row_of
            and self.grid.select_source_row(self.session.row_of[rel]))
        self.tags.removeRequested.connect(lambda tag: self.run_bulk(BulkEdit(Operation.REMOVE_TAG, tag), "all"))
        self.tags.renameRequested.connect(lambda old, new: self.run_bulk(
            BulkEdit(Operation.REPLACE, old, new, whole_tag=True, regex=False), "all"))
        self.detail.captionEdited.connect(self._detail_edited)
        self.grid.selection_model().selectionChanged.connect(lambda *_: self._update_actions())
        for signal in (self.grid.proxy.rowsInserted, self.grid.proxy.rowsRemoved, self.grid.proxy.modelReset,
                       self.grid.proxy.layoutChanged):
            signal.connect(self._update_count)

    # -- workspaces and datasets ------------------------------------------------------------
    def _ask_workspace(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open workspace", str(self.workspace or Path.home()))
        if folder:
            self.open_workspace(Path(folder))

    def _ask_dataset(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open dataset folder", str(self.workspace or Path.home()))
        if folder:
            self.open_dataset_folder(Path(folder))

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
            self._error("Cannot open workspace", f"{path} is not a folder (or is not mounted). Choose another folder.")
            return
        self.workspace = path
        self.workbench.set_workspace(path)
        self._refresh_targets()
        self.settings.add_recent_workspace(path)
        self.setWindowTitle(f"{path.name} — {APP_NAME}")
        self.statusBar().showMessage(f"Scanning {path}…")
        self.tree.scan(path)

    def _workspace_scanned(self) -> None:
        self.statusBar().showMessage(f"Workspace {self.workspace}", 4000)
        if self.session is not None or self.workspace is None:
            return
        last = self.settings.last_dataset(self.workspace)
        if last and Path(last).is_dir():
            self.open_dataset_folder(Path(last))
            return
        first = self.tree.tree_model.first_dataset()
        if first:
            self.open_dataset_folder(Path(first))

    def open_dataset_folder(self, path: Path) -> None:
        """Read the folder in a worker; the grid shows it when ready.

        The open shows its progress and can be cancelled (a slow share); asking for
        another folder meanwhile cancels it. The dataset on screen stays until the new
        one is read.
        """
        path = Path(path)
        showing = self.session is not None and self.session.root == path
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
        self.statusBar().showMessage(f"Opening {name}…")
        self.cancel_open.show()
        task: FunctionTask | None = None

        # Each callback checks that its task is still the one wanted: a cancelled or
        # superseded open may still finish (a stat call on a stalled share cannot be
        # interrupted), and its result must not replace what the user chose since.
        def progress(done: int, total: int) -> None:
            if self._opening is task:
                self.statusBar().showMessage(f"Opening {name}… {done:,}/{total:,}")

        def done(opened: OpenedDataset) -> None:
            if self._opening is task:
                self._open_finished()
                self._dataset_ready(opened)

        def failed(message: str) -> None:
            if self._opening is not task:
                return
            if task.cancel_token.cancelled:  # cancelled from elsewhere (the window closing): not an error
                self._abandon_open(announce=True)
                return
            self._open_finished()
            self._dataset_failed(message)

        task = self.runner.start(open_dataset, path, with_progress=True, on_progress=progress, on_done=done,
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
            if self.session is not None:
                message += f"; {self.session.root.name} is still open"
                self.tree.select_path(str(self.session.root))  # the tree shows what is open again
            self.statusBar().showMessage(message, 8000)

    def _open_finished(self) -> None:
        self._opening = None
        self._opening_path = None
        self.cancel_open.hide()

    def _dataset_failed(self, message: str) -> None:
        self.statusBar().showMessage(message)
        self.datasetFailed.emit(message)
        self._error("Cannot open the dataset", message)

    def _dataset_ready(self, opened: OpenedDataset) -> None:
        self.close_dataset()
        session = DatasetSession(opened, self.runner, self, autosave_ms=self.autosave_ms, poll_ms=self.poll_ms)
        self.session = session
        self.model.set_session(session)
        self.pages.setCurrentWidget(self.grid_page)
        self._rebind_undo(session.undo_stack)
        session.captionsChanged.connect(self._captions_changed)
        session.datasetReset.connect(self._dataset_reset)
        session.dirtyChanged.connect(lambda _d: self._update_save_label())
        session.saved.connect(lambda m: (self.statusBar().showMessage(m, 4000), self._update_save_label(),
                                         self._check_task is None and self.progress.hide()))
        session.saveFailed.connect(lambda m: (self.progress.hide(), self._error("Captions not saved", m)))
        session.saveProgress.connect(self._save_progress)
        session.converted.connect(lambda f: self.format_label.setText(f"Format: {f}"))
        session.conflictsFound.connect(self._conflicts_found)
        session.message.connect(lambda m: self.statusBar().showMessage(m, 8000))
        if self.workspace is not None:
            self.settings.set_last_dataset(self.workspace, opened.root)
        self.tree.select_path(str(opened.root))
        self.format_label.setText(f"Format: {session.format}")
        self._recount_tags()
        self._show_problems()
        self._update_count()
        self._update_save_label()
        # Background work (checking every image, filling the thumbnail cache) starts after
        # the first paint, so that it does not compete with showing the grid.
        QTimer.singleShot(250, lambda s=session: self._start_background_work(s))
        recovered = session.replay_journal()
        message = f"Opened {opened.root.name}: {len(opened.entries):,} images, captions in {session.format}"
        if recovered:
            message += f"; recovered {recovered} unsaved edit{'s' if recovered != 1 else ''} from the last session"
        self.statusBar().showMessage(message, 8000)
        if self.model.rowCount():
            self.grid.select_source_row(0)
        self._update_actions()
        self.datasetOpened.emit(str(opened.root))

    def _rebind_undo(self, stack: QUndoStack) -> None:
        """Point Undo/Redo at ``stack`` (names follow the last action: 'Undo Add tag …')."""
        old_undo, old_redo = self.undo_action, self.redo_action
        self.undo_action = stack.createUndoAction(self, "&Undo")
        self.redo_action = stack.createRedoAction(self, "&Redo")
        self._undo_shortcuts()
        self.undo_action.setIcon(icon("undo"))
        self.redo_action.setIcon(icon("redo"))
        for container in (self.edit_menu, self.toolbar):
            container.insertAction(old_undo, self.undo_action)
            container.insertAction(old_redo, self.redo_action)
            container.removeAction(old_undo)
            container.removeAction(old_redo)
        old_undo.deleteLater()
        old_redo.deleteLater()
        for action in (self.undo_action, self.redo_action):
            widget = self.toolbar.widgetForAction(action)
            if widget is not None:
                widget.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)

    def _undo_shortcuts(self) -> None:
        self.undo_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Undo))
        redo = QKeySequence.keyBindings(QKeySequence.StandardKey.Redo) or [QKeySequence("Ctrl+Shift+Z")]
        self.redo_action.setShortcuts(redo)

    def close_dataset(self) -> None:
        """Save and close the open dataset (if any)."""
        if self._check_task is not None:
            self._check_task.cancel_token.cancel()
            self._check_task = None
        if self.session is None:
            return
        self.grid.finish_editing()
        self.detail.commit()
        self.session.shutdown()
        self.model.set_session(None)
        self.pages.setCurrentWidget(self.empty_state)
        self.session.deleteLater()
        self.session = None

    def reload(self) -> None:
        """Re-read the folder (in a worker), merging with unsaved edits."""
        if self.session is not None:
            self.session.reload()

    def save(self) -> None:
        """Save captions now."""
        if self.session is not None:
            self.grid.finish_editing()
            self.detail.commit()
            self.session.save()

    def convert_to(self, fmt: str) -> None:
        """Write the captions in another format and use it from now on."""
        if self.session is None or fmt == self.session.format:
            return
        self.session.convert(fmt)

    def open_demo(self, root: Path | None = None) -> None:
        """Create the demo workspace in a worker (it may take a while), then open it."""
        root = Path(root) if root else app_home() / "demo-workspace"
        self.statusBar().showMessage(f"Creating the demo workspace in {root} (a few seconds)…")
        self.progress.setRange(0, 0)
        self.progress.show()

        def done(_config) -> None:
            self.progress.hide()
            self.open_workspace(root)

        def failed(message: str) -> None:
            self.progress.hide()
            self._error("Demo not created", f"Creating the demo workspace in {root} failed: {message}")

        self.runner.start(create_demo, root, on_done=done, on_error=failed)

    # -- image checks and problems ---------------------------------------------------------------
    def _start_background_work(self, session: DatasetSession) -> None:
        if session is not self.session:
            return  # another dataset was opened meanwhile
        settle_long_lived_objects()  # after the first paint: no 100 ms GC pauses later
        self._start_image_check()
        self.thumbnails.prefetch([(e.path, e.file_size, e.mtime_ns) for e in session.entries])

    def _start_image_check(self) -> None:
        if self.session is None:
            return
        task = ImageCheckTask([(e.rel, e.path) for e in self.session.entries])
        task.signals.batch.connect(self._image_batch)
        task.signals.done.connect(self._image_check_done)
        self._check_task = task
        self.progress.setRange(0, max(1, len(self.session.entries)))
        self.progress.setValue(0)
        self.progress.setVisible(bool(self.session.entries))
        self.runner.pool.start(task.run)

    def _image_batch(self, infos: dict) -> None:
        if self.session is None or self.sender() is not (self._check_task.signals if self._check_task else None):
            return
        self.model.set_image_info(infos)
        self.progress.setValue(self.progress.value() + len(infos))
        if self.detail.rel in infos and infos[self.detail.rel].problem:
            self._current_changed(self.session.row_of.get(self.detail.rel, -1))

    def _image_check_done(self) -> None:
        self.progress.hide()
        self._check_task = None
        self._show_problems()
        self.imageCheckDone.emit()

    def _show_problems(self) -> None:
        if self.session is None:
            return
        image_problems = {rel: info.problem for rel, info in self.model.info.items() if info.problem}
        self.problems.show_problems(self.session.problems, image_problems)
        total = len(self.session.problems) + len(image_problems)
        self.docks["problems"].setWindowTitle(f"Problems ({total})" if total else "Problems")

    # -- editing -----------------------------------------------------------------------------
    def _detail_edited(self, rel: str, text: str) -> None:
        if self.session is not None and rel in self.session.row_of:
            self.session.set_captions({rel: text}, f"Type in {Path(rel).name}", typing=True)

    def scope_rows(self, scope: str) -> list[int]:
        """Source rows of a bulk scope: 'all', 'filtered' or 'selected'."""
        if scope == "selected":
            return self.grid.selected_rows()
        if scope == "filtered":
            return self.grid.filtered_rows()
        return self.grid.all_rows()

    def run_bulk(self, edit: BulkEdit, scope: str) -> int:
        """Apply a bulk edit to a scope as one undo step; returns the number changed."""
        if self.session is None:
            return 0
        self.detail.commit()
        changed = self.session.bulk(edit, self.scope_rows(scope), scope if scope != "all" else "")
        self.statusBar().showMessage(f"{edit.describe()}: {changed:,} caption{'s' if changed != 1 else ''} changed", 5000)
        return changed

    def open_bulk_dialog(self, operation: Operation) -> BulkEditDialog | None:
        """Open the bulk-edit dialog (non-blocking); it applies when accepted."""
        if self.session is None:
            return None
        counts = {scope: len(self.scope_rows(scope)) for scope in ("all", "filtered", "selected")}
        session = self.session

        def preview(edit: BulkEdit, scope: str) -> dict[int, tuple[str, str]]:
            return session.preview_bulk(edit, self.scope_rows(scope))

        dialog = BulkEditDialog(counts, preview, operation, self)
        dialog.accepted.connect(lambda: self.run_bulk(dialog.edit(), dialog.scope()))
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()
        self.bulk_dialog = dialog
        return dialog

    def _captions_changed(self, rows: list[int]) -> None:
        self._tag_timer.start()
        if self.detail.rel is not None and self.session is not None:
            row = self.session.row_of.get(self.detail.rel)
            if row is not None and row in rows:
                self.detail.set_caption(self.session.captions[row])

    def _dataset_reset(self) -> None:
        self._recount_tags()
        self._show_problems()
        self._start_image_check()

    def _recount_tags(self) -> None:
        self.tags.model.recount(self.session.captions if self.session else [])

    def _current_changed(self, row: int) -> None:
        if self.session is None or row < 0 or row >= len(self.session.entries):
            self.detail.show_item(None, None, "", None)
            return
        entry = self.session.entries[row]
        self.detail.show_item(entry.rel, entry.path, self.session.captions[row], self.model.problem(entry.rel))

    def _step(self, delta: int) -> None:
        view = self.grid.active_view()
        current = view.currentIndex()
        row = (current.row() if current.isValid() else -1) + delta
        if 0 <= row < self.grid.proxy.rowCount():
            self.grid.select_source_row(self.grid.proxy.mapToSource(self.grid.proxy.index(row, 0)).row())

    # -- conflicts ---------------------------------------------------------------------------------
    def _conflicts_found(self, conflicts: list[Conflict]) -> None:
        self.actions.resolve_conflicts.setEnabled(True)
        self.save_label.setText("⚠ Conflicts: not saved")
        self._show_conflicts()

    def _show_conflicts(self) -> None:
        if self.session is None or not self.session.pending_conflicts:
            return
        if self.conflict_dialog is not None:
            self.conflict_dialog.raise_()
            return
        where = self.session.store.path.name if self.session.format != "txt" else "the .txt files"
        dialog = ConflictDialog(self.session.pending_conflicts, where, self)
        self.conflict_dialog = dialog
        session = self.session

        def accepted() -> None:
            session.resolve_conflicts(dialog.choices())
            self.actions.resolve_conflicts.setEnabled(False)
            self._update_save_label()

        def finished(_result: int) -> None:
            self.conflict_dialog = None
            dialog.deleteLater()

        dialog.accepted.connect(accepted)
        dialog.finished.connect(finished)
        dialog.open()

    # -- files ---------------------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        """Accept files and folders dragged from a file manager."""
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        """A dropped folder opens as a workspace; dropped images are copied into the dataset."""
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        folders = [p for p in paths if p.is_dir()]
        if folders:
            self.open_workspace(folders[0])
        else:
            self.add_images(paths)
        event.acceptProposedAction()

    def _ask_add_images(self) -> None:
        if self.session is None:
            return
        files, _ = QFileDialog.getOpenFileNames(self, "Add images", str(Path.home()),
                                                "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff)")
        self.add_images([Path(f) for f in files])

    def add_images(self, paths: list[Path]) -> None:
        """Copy image files into the dataset folder (in a worker), then reload."""
        if self.session is None:
            return
        if not any(p.is_file() and is_image(p) for p in paths):
            self.statusBar().showMessage("Nothing added: drop image files (PNG, JPEG, WebP, BMP, TIFF).", 6000)
            return

        def added(files: list[Path]) -> None:
            self.reload()
            self.statusBar().showMessage(f"Added {len(files)} image(s) to {self.session.root.name}", 5000)

        self.runner.start(copy_images_into, self.session.root, paths, on_done=added,
                          on_error=lambda m: self._error("Images not added", m))

    def trash_selected(self) -> None:
        """Move the selected images (and their .txt captions) to the trash."""
        if self.session is None or not self.grid.selected_rows():
            return
        entries = [self.session.entries[r] for r in self.grid.selected_rows()]
        paths = [e.path for e in entries]
        if self.session.format == "txt":
            paths += [e.path.with_suffix(".txt") for e in entries]
        failed = move_to_trash(paths)
        self.reload()
        if failed:
            self._error("Not moved to the trash", "These files could not be moved to the trash (the share may not "
                        "have one; delete them in your file manager): " + ", ".join(p.name for p in failed[:10]))
        else:
            self.statusBar().showMessage(f"Moved {len(entries)} image(s) to the trash", 5000)

    # -- view ---------------------------------------------------------------------------------------
    def set_grid_mode(self, mode: int) -> None:
        """Thumbnails or table."""
        self.grid.set_mode(mode)
        self.actions.icon_mode.setChecked(mode == ICON_MODE)
        self.actions.table_mode.setChecked(mode == TABLE_MODE)
        self.settings.grid_mode = mode

    def set_theme(self, mode: str) -> None:
        """Apply a theme and remember it."""
        from PySide6.QtWidgets import QApplication
        self.settings.theme = mode
        apply_theme(QApplication.instance(), mode)
        clear_icon_cache()
        self.retint_icons()

    def retint_icons(self) -> None:
        """Redraw monochrome icons in the new theme's text colour."""
        from PySide6.QtGui import QAction
        for action in self.findChildren(QAction):
            name = action.property("iconName")
            if name:
                action.setIcon(icon(name))
        self.undo_action.setIcon(icon("undo"))
        self.redo_action.setIcon(icon("redo"))
        self.detail.retint()
        self.filter_bar.retint()
        self.tree.retint()

    def _apply_filter(self, new) -> None:
        self.grid.proxy.set_filter(new)
        self._update_count()

    def _update_count(self, *_args) -> None:
        self.filter_bar.show_count(self.grid.proxy.rowCount(), self.model.rowCount(), self.grid.proxy.filter_error)

    def _save_progress(self, done: int, total: int) -> None:
        if total < 200 or self._check_task is not None:
            return  # quick saves need no progress bar; the image check owns it while running
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.show()
        self.save_label.setText(f"Saving {done:,} / {total:,}…")

    def _update_save_label(self) -> None:
        if self.session is None:
            self.save_label.setText("")
        elif self.session.pending_conflicts:
            self.save_label.setText("⚠ Conflicts: not saved")
        elif self.session.is_dirty():
            self.save_label.setText(f"● {len(self.session.dirty)} unsaved (autosave on)")
        else:
            self.save_label.setText("✓ All saved")

    def _update_actions(self) -> None:
        has = self.session is not None
        selected = bool(self.grid.selected_rows()) if has else False
        a = self.actions
        for action in (a.save, a.reload, a.bulk_edit, a.add_tag, a.find_replace, a.prepend_trigger, a.add_images,
                       a.edit_caption, a.select_all, a.next_image, a.previous_image):
            action.setEnabled(has)
        self.convert_menu.setEnabled(has)
        a.trash.setEnabled(selected)

    def _about(self) -> None:
        from ..about import about_html
        from ..applog import log_file
        path = log_file()
        QMessageBox.about(self, f"About {APP_NAME}", about_html(str(path) if path else None))

    def _error(self, title: str, message: str) -> None:
        """Tell the user (non-blocking) and put it in the status bar."""
        self.statusBar().showMessage(message, 15000)
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.last_error = message

    def _mode_changed(self, captions: bool) -> None:
        """The caption docks belong to the Captions tab; Train and Runs get the room.

        The workspace tree too: it opens datasets into the Captions grid, and on the Runs
        tab its width is what the runs list needs to show every column.
        """
        for name in ("workspace", "tags", "details", "problems"):
            dock = self.docks[name]
            if captions:
                dock.setVisible(getattr(dock, "_was_visible", True))
            else:
                dock._was_visible = dock.isVisible()
                dock.hide()
        self.toolbar.setVisible(True)

    def _refresh_targets(self) -> None:
        from ..monitor.monitor_page import app_target_context
        try:
            targets = app_target_context().settings.targets
        except Exception:  # noqa: BLE001 - an unreadable targets file: this computer still works
            self.workbench.training.set_targets(["This computer"])
            return
        self.workbench.training.set_targets([t.name for t in targets], {t.name for t in targets if t.kind == "local"})

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        """Save captions and layout, stop workers."""
        if self.workbench.training.is_modified():
            answer = QMessageBox.question(self, "Unsaved training settings",
                                          "Save the training settings before closing?",
                                          QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                                          | QMessageBox.StandardButton.Cancel)
            if answer == QMessageBox.StandardButton.Cancel:
                event.ignore()
                return
            if answer == QMessageBox.StandardButton.Save and not self.workbench.training.save():
                event.ignore()
                return
        self.workbench.set_workspace(None)
        self.close_dataset()
        self.runner.cancel_all()
        self.thumbnails.stop()
        self.runner.pool.waitForDone(10_000)
        if self.workbench.currentWidget() is not self.pages:
            # The next start shows the Captions tab: save its docks, not the ones hidden for Train or Runs.
            self._mode_changed(True)
        self.settings.save_window_state(self.saveGeometry(), self.saveState())
        self.settings.sync()
        self.collector.stop()
        super().closeEvent(event)
