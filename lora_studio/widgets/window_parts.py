"""The main window's parts, made and placed: the docks (workspace, tags, details, problems,
and the Targets panel), the central pages (the empty state, the caption grid under its
filter bar, the text page), the menu bar and the toolbars, from the window's actions and the
menus its controllers own. Built once; what the actions do is wired in :mod:`.main_window`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QDockWidget, QStackedWidget, QToolBar, QVBoxLayout, QWidget

from ..resources import icon
from .dock_layout import set_min_widths
from .empty_state import EmptyState

if TYPE_CHECKING:
    from .main_window import MainWindow


PROBLEMS_HEIGHT = 110  # the Problems dock's height: a few lines, the grid keeps the rest


def _dock(window: MainWindow, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
    # The object name is what saveState/restoreState know the dock by.
    dock = QDockWidget(title, window)
    dock.setObjectName(f"dock-{title.lower()}")
    dock.setWidget(widget)
    window.addDockWidget(area, dock)
    return dock


def build_docks(window: MainWindow) -> None:
    """The side and bottom docks as ``window.docks``, by name; the Targets dock starts hidden."""
    left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
    bottom = Qt.DockWidgetArea.BottomDockWidgetArea
    window.docks = {"workspace": _dock(window, "Workspace", window.tree, left),
                    "tags": _dock(window, "Tags", window.tags, left),
                    "details": _dock(window, "Details", window.detail, right),
                    "problems": _dock(window, "Problems", window.problems, bottom)}
    set_min_widths(window.docks)
    window.resizeDocks([window.docks["workspace"], window.docks["details"]], [260, 380], Qt.Orientation.Horizontal)
    window.resizeDocks([window.docks["problems"]], [PROBLEMS_HEIGHT], Qt.Orientation.Vertical)
    from ..targets_ui.panel import TargetsPanel  # the Targets dock: hidden until Training > Targets…
    window.targets_panel = TargetsPanel(window.runner, lambda: window.workspace, window)
    window.targets_panel.targetsChanged.connect(lambda: window.workbench.offer_targets())
    # A check reads the target's GPUs: the Fleet tab shows them at once, not at its next look.
    window.targets_panel.targets.checkFinished.connect(lambda _report: window.workbench.fleet.refresh())
    window.docks["targets"] = _dock(window, "Targets", window.targets_panel, bottom)
    # A tab beside Problems: side by side, the two halves left neither the targets' columns nor the checks room.
    window.tabifyDockWidget(window.docks["problems"], window.docks["targets"])
    window.docks["targets"].hide()

    def give_height_back(_visible: bool) -> None:
        # Closed (not merely behind the Problems tab), it gives the grid back the height it took.
        if window.docks["targets"].isHidden():
            window.resizeDocks([window.docks["problems"]], [PROBLEMS_HEIGHT], Qt.Orientation.Vertical)

    window.docks["targets"].visibilityChanged.connect(give_height_back)


def build_pages(window: MainWindow) -> None:
    """The pages the Captions tab switches between: ``empty_state``, ``grid_page`` and ``text_page``."""
    window.grid_page = QWidget(window)
    layout = QVBoxLayout(window.grid_page)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(0)
    layout.addWidget(window.filter_bar)
    layout.addWidget(window.autocaption.bar)  # shown when the dataset has an auto-caption job to come back to
    layout.addWidget(window.grid, 1)
    window.empty_state = EmptyState([window.actions.open_workspace, window.actions.open_demo], window)
    window.pages = QStackedWidget(window)
    window.pages.addWidget(window.empty_state)
    window.pages.addWidget(window.grid_page)
    window.pages.addWidget(window.text_page)


def build_menus(window: MainWindow) -> None:
    """The menu bar: File, Training, Edit, View and Help."""
    a, bench = window.actions, window.workbench
    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    file_menu.addActions([a.open_workspace, a.open_dataset, a.open_text_file])
    file_menu.addMenu(window.workspaces.recent_menu)
    file_menu.addAction(a.open_demo)
    file_menu.addSeparator()
    train_menu = bar.addMenu("&Training")
    train_menu.addActions([bench.new_training_action, bench.open_config_action])
    train_menu.addAction("&Import kohya Config…", bench.import_kohya)
    train_menu.addSeparator()
    train_menu.addAction("Show &Runs", QKeySequence("Ctrl+3"), bench.show_runs)
    train_menu.addAction("Show &Fleet (Targets and Queue)", QKeySequence("Ctrl+4"), bench.show_fleet)
    train_menu.addAction("&Targets…", window.targets_panel.reveal)
    file_menu.addActions([a.save, a.reload])
    file_menu.addMenu(window.datasets.convert_menu)
    file_menu.addSeparator()
    file_menu.addActions([a.add_images, a.trash])
    file_menu.addSeparator()
    file_menu.addAction(a.quit)

    edit_menu = window.edit_menu = bar.addMenu("&Edit")
    edit_menu.addActions([window.undo_action, window.redo_action])
    edit_menu.addSeparator()
    edit_menu.addActions([a.edit_caption, a.bulk_edit, a.add_tag, a.prepend_trigger, a.find_replace,
                          window.autocaption.action])
    edit_menu.addSeparator()
    edit_menu.addActions([a.select_all, a.next_image, a.previous_image, a.resolve_conflicts])

    view_menu = bar.addMenu("&View")
    group = QActionGroup(window)
    for action in (a.icon_mode, a.table_mode):
        group.addAction(action)
        view_menu.addAction(action)
    view_menu.addAction(a.focus_filter)
    view_menu.addSeparator()
    for dock in window.docks.values():
        view_menu.addAction(dock.toggleViewAction())
    view_menu.addSeparator()
    view_menu.addMenu(window.theme.menu)
    bar.addMenu("&Help").addAction(a.about)


def build_toolbar(window: MainWindow) -> None:
    """The toolbars: the main one (``window.toolbar``: workspace and training, on every tab) and the
    captions one (``window.caption_toolbar``, shown with the Captions tab only: its actions edit the
    open dataset). Undo, redo, reload and the view modes show only their icons."""
    a = window.actions
    window.workbench.new_training_action.setIcon(icon("demo"))
    window.toolbar = _toolbar(window, "Main", "toolbar-main",
                              [a.open_workspace, None, window.workbench.new_training_action])
    window.caption_toolbar = _toolbar(window, "Captions", "toolbar-captions", [
        a.save, None, window.undo_action, window.redo_action, None, a.icon_mode, a.table_mode, None, a.bulk_edit,
        a.find_replace, window.autocaption.action, None, a.reload])
    for action in (window.undo_action, window.redo_action, a.reload, a.icon_mode, a.table_mode):
        window.caption_toolbar.widgetForAction(action).setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)


def _toolbar(window: MainWindow, title: str, name: str, items: list[QAction | None]) -> QToolBar:
    """A fixed toolbar of ``items`` (None: a separator), added to the window."""
    toolbar = QToolBar(title, window)
    toolbar.setObjectName(name)  # the window's saved state finds it by this name
    toolbar.setMovable(False)
    toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    for item in items:
        toolbar.addSeparator() if item is None else toolbar.addAction(item)
    window.addToolBar(toolbar)
    return toolbar
