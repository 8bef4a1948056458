"""The training page's widgets, made, laid out and connected to the page's handlers: the
header (title, preset, Save, target, Start), the Settings / YAML / Changes tabs, and the
side column with the run's figures and its problems. What the handlers do is the page's
(:mod:`.page`); this module decides nothing.

As with a Qt Designer ``setupUi``, the widgets become attributes of the page, so that the
page, the main window and the tests reach them by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QFontDatabase
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QListWidget,
                               QPlainTextEdit, QPushButton, QSplitter, QTabWidget, QVBoxLayout, QWidget)

from ..boxes import push_button
from .form import TrainingForm

if TYPE_CHECKING:
    from .page import TrainingPage


def build_page(page: TrainingPage) -> None:
    """Make the page's widgets (header above; tabs and the side column side by side) and lay them out."""
    header = _header(page)
    tabs = _tabs(page)
    side = _side(page)
    splitter = QSplitter(page)
    splitter.addWidget(tabs)
    splitter.addWidget(side)
    splitter.setStretchFactor(0, 3)
    splitter.setStretchFactor(1, 1)
    splitter.setSizes([760, 300])
    layout = QVBoxLayout(page)
    layout.addLayout(header)
    layout.addWidget(splitter, 1)


def _header(page: TrainingPage) -> QHBoxLayout:
    """The config's title, the preset box and its buttons, Save, where to run, and Start."""
    page.title = QLabel(page)
    page.title.setObjectName("pageTitle")
    font = QFont(page.title.font())
    font.setPointSizeF(font.pointSizeF() * 1.15)
    page.title.setFont(font)
    page.preset_box = QComboBox(page)
    page.preset_box.setToolTip("Start from a preset; fields that differ from it are shown in bold")
    page.preset_box.activated.connect(page._preset_chosen)
    page.save_button = push_button("Save", page, page.save)
    page.save_button.setShortcut("Ctrl+S")
    page.reset_all_button = push_button("Reset all", page, page._preset_chosen,
                                        tip="Put every option back to the preset's value (paths are kept)")
    page.save_preset_button = push_button("Save as preset…", page, page._save_as_preset)
    page.target_box = QComboBox(page)
    page.target_box.setObjectName("targetBox")
    page.target_box.setToolTip("Where the training runs (targets are set up in the Targets panel)")
    page.target_box.addItem("This computer")
    page.target_box.currentIndexChanged.connect(lambda _: page._target_changed())
    # A launch option of vSphere targets: the VM as it was before this run, one revert away.
    page.snapshot_box = QCheckBox("Snapshot the VM first", page)
    page.snapshot_box.setObjectName("snapshotFirst")
    page.snapshot_box.setToolTip("Take a snapshot of the VM, named after the run, before the trainer starts; "
                                 "if it cannot be taken, the run does not start")
    page.snapshot_box.hide()
    page.start_button = QPushButton("Start training", page)
    page.start_button.setObjectName("startButton")
    page.start_button.clicked.connect(page._start)
    header = QHBoxLayout()
    header.addWidget(page.title, 1)
    header.addWidget(QLabel("Preset:", page))
    header.addWidget(page.preset_box)
    header.addWidget(page.reset_all_button)
    header.addWidget(page.save_preset_button)
    header.addWidget(page.save_button)
    header.addWidget(QLabel("Run on:", page))
    header.addWidget(page.target_box)
    header.addWidget(page.snapshot_box)
    header.addWidget(page.start_button)
    return header


def _tabs(page: TrainingPage) -> QTabWidget:
    """The settings form, the YAML text (the document itself) and the changes from the preset."""
    page.form = TrainingForm(lambda: page.config_path.parent if page.config_path else page.workspace, page)
    page.form.valuesChanged.connect(page._form_edited)
    page.yaml_edit = QPlainTextEdit(page)
    page.yaml_edit.setObjectName("yamlView")
    page.yaml_edit.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
    page.yaml_edit.textChanged.connect(page._yaml_edited)
    page.diff_list = QListWidget(page)
    page.tabs = QTabWidget(page)
    page.tabs.addTab(page.form, "Settings")
    page.tabs.addTab(page.yaml_edit, "YAML")
    page.tabs.addTab(page.diff_list, "Changes from preset")
    return page.tabs


def _side(page: TrainingPage) -> QWidget:
    """The run's figures and memory estimate above the problems that keep Start off."""
    page.figures = QLabel(page)
    page.figures.setWordWrap(True)
    page.figures.setObjectName("figures")
    page.memory = QLabel(page)
    page.memory.setWordWrap(True)
    page.problem_list = QListWidget(page)
    page.problem_list.setObjectName("problemList")
    page.problem_list.setWordWrap(True)
    page.problem_list.itemActivated.connect(lambda item: page.form.focus_option(item.data(Qt.ItemDataRole.UserRole)))
    page.problem_list.itemClicked.connect(lambda item: page.form.focus_option(item.data(Qt.ItemDataRole.UserRole)))
    page.start_reason = QLabel(page)
    page.start_reason.setWordWrap(True)
    page.start_reason.setObjectName("startReason")
    side = QWidget(page)
    side_layout = QVBoxLayout(side)
    side_layout.setContentsMargins(0, 0, 0, 0)
    run_box = QGroupBox("This run", side)
    run_form = QFormLayout(run_box)
    run_form.addRow(page.figures)
    run_form.addRow(page.memory)
    side_layout.addWidget(run_box)
    problems_box = QGroupBox("Problems", side)
    problems_layout = QVBoxLayout(problems_box)
    problems_layout.addWidget(page.start_reason)
    problems_layout.addWidget(page.problem_list, 1)
    side_layout.addWidget(problems_box, 1)
    return side
