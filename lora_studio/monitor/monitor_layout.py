"""The Runs page's widgets, made, laid out and connected to the page's handlers: the runs
list with its filter and buttons, the selected run's head (title, state, progress, details,
controls) and its tabs (loss, samples, log, files). What the handlers do is the page's
(:mod:`.monitor_page`); this module decides nothing.

As with a Qt Designer ``setupUi``, the widgets become attributes of the page, so that the
page, its tests and the screenshot scripts reach them by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QSortFilterProxyModel, Qt
from PySide6.QtGui import QFontMetrics, QPalette
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QFormLayout, QFrame, QGroupBox, QHBoxLayout, QHeaderView,
                               QLabel, QLineEdit, QProgressBar, QPushButton, QSizePolicy, QSplitter,
                               QStackedWidget, QTableView, QTabWidget, QVBoxLayout, QWidget)

from ..boxes import column, push_button
from ..workers.thumbnails import ThumbnailLoader
from .log_view import LogView
from .loss_plot import LossPlot
from .placement_view import PlacementLabel
from .run_files_view import RunFilesView
from .samples_view import SamplesView
from .stop_bar import StopBar

# The Resume button's two tips: a run that ran, and one whose start from the queue failed.
RESUME_TIP = "Start the run again where its last checkpoint left off"
AUTO_RECOVER_TEXT = "Recover automatically when lost"
# A queued run has no machine to lose yet: the choice is kept in its folder and holds from its start.
AUTO_RECOVER_QUEUED_TEXT = "Recover automatically when lost, once it has started"
TRAIN_AGAIN_TIP = ("A new config with this run's settings, in the Train tab: change what you like and start it "
                   "as a new run (this one stays as it is)")
REQUEUE_TIP = "Put the run back into the queue (after fixing what its start said): it starts when a target frees up"
# What the runs list says while it has no rows: before the first scan, and when the workspace has no runs yet.
LOOKING_FOR_RUNS = "Looking for runs…"
NO_RUNS = ("<b>No runs yet.</b><br>Open a config on the Train tab and press <i>Start training</i>: the run appears "
           "here with its live loss curve, samples and log. Runs started from another desk or from the command line "
           "into this workspace show up by themselves.")

if TYPE_CHECKING:
    from .monitor_page import MonitorPage


def build_monitor_page(page: MonitorPage, thumbnails: ThumbnailLoader) -> None:
    """Make the page's widgets (runs list left, the selected run right) and lay them out in ``page``."""
    left = _runs_list(page)
    head = _run_head(page)
    right = column(page, head, (_run_tabs(page, thumbnails), 1))
    splitter = QSplitter(page)
    splitter.addWidget(left)
    splitter.addWidget(right)
    splitter.setStretchFactor(1, 1)
    splitter.setSizes([620, 780])  # room for the runs list's columns at the default window width
    layout = QVBoxLayout(page)
    layout.addWidget(splitter)


def _runs_list(page: MonitorPage) -> QWidget:
    """The runs table (sorted, filtered, several rows selectable), its filter and its buttons."""
    page.proxy = QSortFilterProxyModel(page)
    page.proxy.setSourceModel(page.model)
    page.proxy.setSortRole(Qt.ItemDataRole.UserRole)
    page.proxy.setFilterKeyColumn(-1)
    page.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
    page.table = QTableView(page)
    page.table.setObjectName("runsTable")
    page.table.setModel(page.proxy)
    page.table.setSortingEnabled(True)
    page.table.sortByColumn(4, Qt.SortOrder.DescendingOrder)  # newest first
    page.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    page.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
    page.table.verticalHeader().hide()
    # Every column as wide as its text, but the run's name takes what is left and gives way
    # first (elided in the middle: names differ at their ends, "…-v3", "…-final").
    page.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    page.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    page.table.horizontalHeader().setStretchLastSection(False)
    page.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
    page.table.setWordWrap(False)  # a wrapped name is cut off at the row's bottom instead
    page.table.selectionModel().selectionChanged.connect(page._selection_changed)
    page.filter = QLineEdit(page)
    page.filter.setPlaceholderText("Filter runs by name, state or target…")
    page.filter.setClearButtonEnabled(True)
    page.filter.textChanged.connect(page.proxy.setFilterFixedString)
    page.overlay = QCheckBox("Overlay selected runs", page)
    page.overlay.setToolTip("Select several runs (Ctrl+click) to compare their loss curves")
    page.overlay.setChecked(True)
    # The selected run's folder opens from its head ("Output folder"); the list's own button acts on the selection.
    page.trash_button = push_button("Move to trash", page, page.delete_selected)
    page.trash_button.setEnabled(False)  # until a run is selected
    page.no_runs = QLabel(LOOKING_FOR_RUNS, page)
    page.no_runs.setObjectName("noRuns")
    page.no_runs.setWordWrap(True)
    page.no_runs.setAlignment(Qt.AlignmentFlag.AlignCenter)
    page.no_runs.setMargin(40)
    # Framed on the list's own background: the words sit where the runs will be listed.
    page.no_runs.setFrameShape(QFrame.Shape.StyledPanel)
    page.no_runs.setBackgroundRole(QPalette.ColorRole.Base)
    page.no_runs.setAutoFillBackground(True)
    page.runs_stack = QStackedWidget(page)  # the empty list's words, or the runs table
    page.runs_stack.addWidget(page.no_runs)
    page.runs_stack.addWidget(page.table)
    left = column(page, page.filter, (page.runs_stack, 1))
    left_layout = left.layout()
    buttons = QHBoxLayout()
    buttons.addWidget(page.overlay, 1)
    buttons.addWidget(page.trash_button)
    left_layout.addLayout(buttons)
    return left


def _run_head(page: MonitorPage) -> QGroupBox:
    """The selected run's title and state, progress, details, error, controls and recovery switch."""
    page.title = QLabel("Select a run", page)
    page.title.setObjectName("runTitle")
    # A long run path must give way to the state label, not push it out of sight.
    page.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    page.state = QLabel(page)
    page.state.setObjectName("runState")
    bold = page.state.font()
    bold.setBold(True)
    # Room for the longest state in bold, so that no state is ever cut off.
    page.state.setMinimumWidth(QFontMetrics(bold).horizontalAdvance("NOT_STARTED") + 8)
    page.state.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    page.progress = QProgressBar(page)
    page.progress.setTextVisible(True)
    page.details = QLabel(page)
    page.details.setObjectName("runDetails")
    page.details.setWordWrap(True)  # a queued run's reasons are long: wrapped, they never squeeze the runs list
    page.placement = PlacementLabel(page)  # the nodes of a multi-node run
    page.error = QLabel(page)
    page.error.setWordWrap(True)
    page.error.setStyleSheet("color: #dc2626;")
    page.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    page.stop_bar = StopBar(page.runner, lambda: page.context(), page)
    page.stop_bar.stopEnded.connect(lambda path: page.refresh() if str(page.run_dir) == path else None)
    page.stop_bar.cancelQueued.connect(page.cancelQueued)
    page.stop_button = page.stop_bar.stop_button
    page.resume_button = QPushButton("Resume", page)
    page.resume_button.setToolTip(RESUME_TIP)
    page.resume_button.clicked.connect(lambda: page.resume_selected(None))
    page.resume_elsewhere = QPushButton("Resume on…", page)
    page.resume_elsewhere.clicked.connect(page._resume_on_other_target)
    page.train_again_button = QPushButton("Train again…", page)
    page.train_again_button.setToolTip(TRAIN_AGAIN_TIP)
    page.train_again_button.clicked.connect(lambda: page.trainAgain.emit(str(page.run_dir)) if page.run_dir else None)
    page.tensorboard_button = QPushButton("TensorBoard", page)
    page.tensorboard_button.clicked.connect(page.open_tensorboard)
    page.output_button = QPushButton("Output folder", page)
    page.output_button.clicked.connect(page.open_folder)
    page.auto_recover = QCheckBox(AUTO_RECOVER_TEXT, page)
    page.auto_recover.setToolTip("When this run's machine dies (or vCenter reports its VM powered off), start it "
                                 "again from its last checkpoint: on the same target once it is back, else on "
                                 "another free target that sees the run folder (at most 3 times)")
    page.auto_recover.toggled.connect(page._auto_recover_toggled)
    controls = QHBoxLayout()
    for widget in (page.stop_button, page.resume_button, page.resume_elsewhere, page.train_again_button,
                   page.tensorboard_button, page.output_button):
        controls.addWidget(widget)
    controls.addStretch(1)
    head = QGroupBox(page)
    head_layout = QFormLayout(head)
    title_row = QHBoxLayout()
    title_row.addWidget(page.title, 1)
    title_row.addWidget(page.state)
    head_layout.addRow(title_row)
    head_layout.addRow(page.progress)
    head_layout.addRow(page.details)
    head_layout.addRow(page.placement)
    head_layout.addRow(page.error)
    head_layout.addRow(controls)
    head_layout.addRow(page.stop_bar)
    head_layout.addRow(page.auto_recover)
    return head


def _run_tabs(page: MonitorPage, thumbnails: ThumbnailLoader) -> QTabWidget:
    """The selected run's tabs: the loss curves (with export), samples, log, and its files and checkpoints."""
    page.plot = LossPlot(page)
    page.log_view = LogView(page)
    page.samples = SamplesView(thumbnails, page)
    page.files = RunFilesView(page.runner, page)
    page.files.resumeFrom.connect(page._resume_from_checkpoint)
    export_row = QHBoxLayout()
    export_row.addStretch(1)
    export_row.addWidget(push_button("Export PNG…", page, page._export_png))
    export_row.addWidget(push_button("Export CSV…", page, page._export_csv))
    loss_page = column(page, (page.plot, 1), export_row)
    page.tabs = QTabWidget(page)
    page.tabs.addTab(loss_page, "Loss")
    page.tabs.addTab(page.samples, "Samples")
    page.tabs.addTab(page.log_view, "Log")
    page.tabs.addTab(page.files, "Files")
    return page.tabs
