"""The main window: workspace browser, caption grid, detail pane, tags and problems.

The work is done by controllers (datasets, the workspace, image checks, bulk edits, files,
auto-captioning); the window builds the widgets, places what the controllers own (its docks,
pages, menus and toolbar are made in :mod:`.window_parts`), and wires.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QThreadPool, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QShowEvent
from PySide6.QtWidgets import QMainWindow, QMessageBox

from .. import APP_NAME
from ..autocaption.hook import AutoCaptionController
from ..editing.session import DatasetSession
from ..gc_control import UiThreadCollector
from ..models.caption_model import CaptionModel
from ..paths import thumbnail_cache_dir
from ..resources import icon
from ..settings import Settings
from ..tags import BulkEdit, Operation
from ..workers.tasks import TaskRunner
from ..workers.thumbnails import ThumbnailLoader
from .actions import create_actions
from .bulk_edits import BulkEdits
from .caption_grid import ICON_MODE, TABLE_MODE, CaptionGrid
from .dataset_controller import DatasetController
from .detail_pane import DetailPane
from .dock_layout import fit_side_docks
from .file_actions import FileActions
from .filter_bar import FilterBar
from .image_checks import ImageChecks
from .pane_sync import PaneSync
from .problems_panel import ProblemsPanel
from .status_strip import StatusStrip
from .tag_panel import TagPanel
from .text_controller import TextDatasetController
from .text_docks import TextDocks
from .text_page import TextDatasetPage
from .theme_menu import ThemeMenu
from .undo_actions import UndoActions
from .unsaved_settings import may_set_aside
from .window_parts import build_docks, build_menus, build_pages, build_toolbar
from .workbench import Workbench
from .workspace_controller import WorkspaceController
from .workspace_tree import WorkspaceTree

# The docks of the Captions tab: Train and Runs hide them to get the room.
CAPTION_DOCKS = ("workspace", "tags", "details", "problems")


class MainWindow(QMainWindow):
    """One workspace at a time; one dataset of it open in the grid."""

    # Passed on from the controllers, for the command line and the tests.
    datasetOpened = Signal(str)  # the root of a dataset now on screen
    datasetFailed = Signal(str)  # why a dataset folder could not be opened
    imageCheckDone = Signal()  # every image of the open dataset was checked

    def __init__(self, settings: Settings | None = None, autosave_ms: int = 1500, poll_ms: int = 2000) -> None:
        super().__init__()
        self.settings = settings or Settings()
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

        self.model = CaptionModel(thumbnails=self.thumbnails, parent=self)
        self.grid = CaptionGrid(self.model, self)
        self.filter_bar = FilterBar(self)
        self.tree = WorkspaceTree(self.runner, self)
        self.detail = DetailPane(self.runner, self)
        self.tags = TagPanel(self)
        self.problems = ProblemsPanel(self)
        self.actions = create_actions(self)
        self.status = StatusStrip(self.statusBar())
        self.text_page = TextDatasetPage(self)
        self.text = TextDatasetController(self.runner, self.text_page, self.problems, self.status, self,
                                          autosave_ms=autosave_ms, poll_ms=poll_ms)
        self.datasets = DatasetController(self.runner, self.thumbnails, self.model, self.grid, self.detail,
                                          self.status, self, autosave_ms=autosave_ms, poll_ms=poll_ms, text=self.text)
        self.workspaces = WorkspaceController(self.settings, self.tree, self.datasets, self.runner, self.status, self)
        self.checks = ImageChecks(self.runner.pool, self.model, self.problems, self.status, self)
        self.panes = PaneSync(self.model, self.grid, self.detail, self.tags, self)
        self.bulk = BulkEdits(self.datasets, self.grid, self.detail, self.status, self)
        self.theme = ThemeMenu(self.settings, self)
        self.files = FileActions(self.datasets, self.grid, self.runner, self.status, self)
        self.autocaption = AutoCaptionController(
            session=lambda: self.datasets.session, workspace=lambda: self.workspaces.workspace, runner=self.runner,
            scope_rows=self.bulk.scope_rows, flush_edits=self.datasets.flush_edits,
            show_message=self.status.show_message, parent=self)
        self.undo = UndoActions(self)
        self.undo_action, self.redo_action = self.undo.undo, self.undo.redo
        build_docks(self)
        build_pages(self)
        self.workbench = Workbench(self.pages, self.runner, self.thumbnails,
                                   lambda: self.session.root if self.session else None, self)
        self.setCentralWidget(self.workbench)
        self.text_docks = TextDocks(self.docks, lambda: self.workbench.currentWidget() is self.pages)
        build_menus(self)
        build_toolbar(self)
        self._connect()
        self._connect_text()
        self.status.show_message("Open a workspace folder to begin (Ctrl+O)")
        self.workbench.offer_targets()

        # Load the CLIP tokenizer's merge table (~0.2 s) off the UI thread, before it is needed.
        from ..tokens import count_tokens
        self.runner.start(count_tokens, "")
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

    # -- what the app and the tests drive ----------------------------------------------------
    @property
    def session(self) -> DatasetSession | None:
        """The session of the dataset on screen."""
        return self.datasets.session

    @property
    def workspace(self) -> Path | None:
        """The workspace folder open now."""
        return self.workspaces.workspace

    def open_workspace(self, path: Path) -> None:
        """Show ``path``'s folders; the last (or first) dataset in it opens when scanned."""
        self.workspaces.open_workspace(path)

    def open_dataset_folder(self, path: Path) -> None:
        """Open one dataset folder (in a worker; ``datasetOpened`` says when it is on screen)."""
        self.datasets.open_dataset_folder(path)

    def open_demo(self, root: Path | None = None) -> None:
        """Create the demo workspace (in a worker), then open it."""
        self.workspaces.open_demo(root)

    def run_bulk(self, edit: BulkEdit, scope: str) -> int:
        """Apply a bulk edit to a scope ('all', 'filtered', 'selected') as one undo step."""
        return self.bulk.run_bulk(edit, scope)

    def save(self) -> None:
        """Save captions now."""
        self.datasets.save()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802
        """On the first show, share the width out again if the restored docks did not fit."""
        super().showEvent(event)
        if not self._docks_fitted:
            self._docks_fitted = True
            fit_side_docks(self, self.docks)

    # -- wiring ---------------------------------------------------------------------------
    def _connect(self) -> None:
        a, grid, datasets, workspaces = self.actions, self.grid, self.datasets, self.workspaces
        a.open_workspace.triggered.connect(workspaces.ask_workspace)
        a.open_dataset.triggered.connect(workspaces.ask_dataset)
        a.open_text_file.triggered.connect(workspaces.ask_text_file)
        a.open_demo.triggered.connect(lambda: workspaces.open_demo())
        a.save.triggered.connect(datasets.save)
        a.reload.triggered.connect(datasets.reload)
        a.add_images.triggered.connect(self.files.ask_add_images)
        a.trash.triggered.connect(self.files.trash_selected)
        a.quit.triggered.connect(self.close)
        a.edit_caption.triggered.connect(grid.edit_current)
        for action, operation in ((a.bulk_edit, Operation.ADD_TAG), (a.add_tag, Operation.ADD_TAG),
                                  (a.prepend_trigger, Operation.PREPEND_TRIGGER)):
            action.triggered.connect(lambda _=False, op=operation: self.bulk.open_bulk_dialog(op))
        a.find_replace.triggered.connect(lambda: self.text.open_find_replace() if self.text.session
                                         else self.bulk.open_bulk_dialog(Operation.REPLACE))
        a.select_all.triggered.connect(lambda: (self.text_page.table if self.text.session
                                                else grid.active_view()).selectAll())
        a.resolve_conflicts.triggered.connect(datasets.show_conflicts)
        a.icon_mode.triggered.connect(lambda: self.set_grid_mode(ICON_MODE))
        a.table_mode.triggered.connect(lambda: self.set_grid_mode(TABLE_MODE))
        a.focus_filter.triggered.connect(self._focus_filter)
        a.next_image.triggered.connect(lambda: self.text_page.table.step(1) if self.text.session else self.panes.step(1))
        a.previous_image.triggered.connect(lambda: self.text_page.table.step(-1) if self.text.session
                                           else self.panes.step(-1))
        a.about.triggered.connect(self._about)
        workspaces.workspaceChanged.connect(self._workspace_changed)
        self.files.folderDropped.connect(workspaces.open_workspace)
        datasets.sessionClosing.connect(self.checks.cancel)
        for follower in (self._session_changed, self.undo.follow, self.checks.set_session, self.panes.set_session):
            datasets.sessionChanged.connect(follower)
        datasets.sessionSettled.connect(self.checks.start)
        datasets.datasetOpened.connect(self._update_actions)
        datasets.datasetOpened.connect(self.autocaption.dataset_opened)
        datasets.conflictsPending.connect(a.resolve_conflicts.setEnabled)
        self.checks.problemsFound.connect(self.panes.refresh_if_shown)
        self.checks.problemsCounted.connect(
            lambda total: self.docks["problems"].setWindowTitle(f"Problems ({total})" if total else "Problems"))
        self.problems.imageChosen.connect(self.panes.select)
        self.tags.tagClicked.connect(self.filter_bar.set_tag)
        self.tags.removeRequested.connect(self.bulk.remove_tag)
        self.tags.renameRequested.connect(self.bulk.rename_tag)
        self.filter_bar.filterChanged.connect(lambda new: (grid.proxy.set_filter(new), self._update_count()))
        grid.selection_model().selectionChanged.connect(lambda *_: (self._update_actions(),
                                                                    self.autocaption.scopes_changed()))
        for signal in (grid.proxy.rowsInserted, grid.proxy.rowsRemoved, grid.proxy.modelReset,
                       grid.proxy.layoutChanged):
            signal.connect(self._update_count)
            signal.connect(lambda *_: self.autocaption.scopes_changed())
        self.workbench.captionsShown.connect(self._mode_changed)
        self.workbench.training.familyChanged.connect(self.detail.set_family)
        self.theme.themeChanged.connect(self.retint_icons)
        datasets.datasetOpened.connect(self.datasetOpened)  # last: the app's own followers come first
        datasets.datasetFailed.connect(self.datasetFailed)
        self.checks.imageCheckDone.connect(self.imageCheckDone)

    def _connect_text(self) -> None:
        """Text datasets: their controller shows them on the text page and shares the window's panes."""
        text = self.text
        for follower in (self._text_session_changed, self.undo.follow):
            text.sessionChanged.connect(follower)
        text.datasetOpened.connect(self._update_actions)
        text.datasetOpened.connect(self.workspaces.remember_dataset)
        text.datasetOpened.connect(self.datasetOpened)
        text.problemsCounted.connect(
            lambda total: self.docks["problems"].setWindowTitle(f"Problems ({total})" if total else "Problems"))
        text.conflictsPending.connect(self.actions.resolve_conflicts.setEnabled)
        self.actions.resolve_conflicts.triggered.connect(text.show_conflicts)
        self.problems.locationChosen.connect(text.go_to)
        training = self.workbench.training
        training.analysisDone.connect(lambda: text.set_training_config(
            training.raw, training.config_path.parent if training.config_path else None))

    # -- following the controllers ---------------------------------------------------------------
    def _workspace_changed(self, path: Path) -> None:
        self.workbench.set_workspace(path)
        self.workbench.offer_targets()
        self.setWindowTitle(f"{path.name} — {APP_NAME}")

    def _session_changed(self, session: DatasetSession | None) -> None:
        self.pages.setCurrentWidget(self.grid_page if session is not None else self.empty_state)
        self._update_count()

    def _text_session_changed(self, session) -> None:
        if session is not None:
            self.pages.setCurrentWidget(self.text_page)
        elif self.pages.currentWidget() is self.text_page:
            self.pages.setCurrentWidget(self.grid_page if self.session is not None else self.empty_state)
        self.text_docks.text_shown(session is not None)
        self.workbench.setTabText(self.workbench.indexOf(self.pages), "Examples" if session is not None else "Captions")
        self.actions.save.setText("&Save Examples" if session is not None else "&Save Captions")
        self._update_actions()
        if session is not None:
            self.autocaption.action.setEnabled(False)  # captions images: enabled again when an image dataset opens

    def _focus_filter(self) -> None:
        search = (self.text_page.filter_bar if self.text.session else self.filter_bar).search
        search.setFocus()
        search.selectAll()

    def _update_count(self, *_args) -> None:
        self.filter_bar.show_count(self.grid.proxy.rowCount(), self.model.rowCount(), self.grid.proxy.filter_error)

    def _update_actions(self) -> None:
        has = self.session is not None
        selected = bool(self.grid.selected_rows()) if has else False
        a = self.actions
        for action in (a.bulk_edit, a.add_tag, a.prepend_trigger, a.add_images, a.edit_caption):
            action.setEnabled(has)
        for action in (a.icon_mode, a.table_mode):  # the caption grid's views; a text dataset has its table
            action.setEnabled(self.text.session is None)
        # What a text dataset has too: saving, reloading, find and replace, moving through the rows.
        for action in (a.save, a.reload, a.find_replace, a.select_all, a.next_image, a.previous_image):
            action.setEnabled(has or self.text.session is not None)
        a.trash.setEnabled(selected)

    # -- view ---------------------------------------------------------------------------------------
    def set_grid_mode(self, mode: int) -> None:
        """Thumbnails or table."""
        self.grid.set_mode(mode)
        self.actions.icon_mode.setChecked(mode == ICON_MODE)
        self.actions.table_mode.setChecked(mode == TABLE_MODE)
        self.settings.grid_mode = mode

    def retint_icons(self, _mode: str = "") -> None:
        """Redraw monochrome icons in the new theme's text colour."""
        for action in self.findChildren(QAction):
            name = action.property("iconName")
            if name:
                action.setIcon(icon(name))
        self.detail.retint()
        self.filter_bar.retint()
        self.tree.retint()

    def _about(self) -> None:
        from ..about import about_html
        from ..applog import log_file
        path = log_file()
        QMessageBox.about(self, f"About {APP_NAME}", about_html(str(path) if path else None))

    def _mode_changed(self, captions: bool) -> None:
        """The caption docks and the captions toolbar belong to the Captions tab; Train and Runs get the room.

        The workspace tree too: it opens datasets into the Captions grid, and on the Runs
        tab its width is what the runs list needs to show every column.
        """
        for name in CAPTION_DOCKS:
            dock = self.docks[name]
            if captions:
                dock.setVisible(getattr(dock, "_was_visible", True))
            else:
                dock._was_visible = dock.isVisible()
                dock.hide()
        self.caption_toolbar.setVisible(captions)  # its actions edit the open dataset

    # -- files dropped, closing ----------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        """Accept files and folders dragged from a file manager."""
        if self.files.accepts(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        """A dropped folder opens as a workspace; dropped images are copied into the dataset."""
        self.files.drop(event.mimeData())
        event.acceptProposedAction()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        """Save captions and layout, stop workers."""
        if not may_set_aside(self, self.workbench.training, "closing"):
            event.ignore()
            return
        self.autocaption.shutdown()
        self.workbench.set_workspace(None)
        self.datasets.close_dataset()
        self.text.close()
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
