"""The auto-caption dialog's widgets, made, laid out and connected to the dialog's handlers:
the settings with what Start would do (left), the job's headline, progress, errors and the
preview table with the current row in full (right), and Start / Stop / Apply / Close. What
the handlers do is the dialog's (:mod:`.dialog`); this module decides nothing.

As with a Qt Designer ``setupUi``, the widgets become attributes of the dialog, so that the
dialog and its tests reach them by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QProgressBar, QPushButton,
                               QTableView, QVBoxLayout, QWidget)

from .preview_model import COL_AFTER, COL_IMAGE, COL_NOW, PreviewModel

if TYPE_CHECKING:
    from .dialog import AutoCaptionDialog

ERROR_COLOR = "#b91c1c"  # readable on the light and the dark theme


def build_dialog(dialog: AutoCaptionDialog) -> None:
    """Make the dialog's widgets around its settings panel (``dialog.settings``) and lay them out."""
    # What Start would do (left, above Start) vs. what the job did (right, above the preview).
    dialog.summary = QLabel("", dialog)
    dialog.summary.setWordWrap(True)
    left_widget = QWidget(dialog)
    left = QVBoxLayout(left_widget)
    left.setContentsMargins(0, 0, 0, 0)
    left.addWidget(dialog.settings)
    left.addStretch(1)
    left.addWidget(dialog.summary)
    left_widget.setFixedWidth(390)

    dialog.headline = QLabel("Preview", dialog)
    dialog.headline.setStyleSheet("font-weight: 600;")
    dialog.headline.setWordWrap(True)
    dialog.progress = QProgressBar(dialog)
    dialog.progress.setTextVisible(False)
    dialog.progress.setRange(0, 1)
    dialog.progress.setValue(0)
    dialog.progress.hide()  # until a job runs: an empty bar says nothing
    dialog.state_label = QLabel("Start proposes captions here; nothing changes until you apply them.", dialog)
    dialog.state_label.setObjectName("hint")
    dialog.state_label.setWordWrap(True)
    dialog.errors = QLabel("", dialog)
    dialog.errors.setWordWrap(True)
    dialog.errors.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    dialog.errors.setStyleSheet(f"color: {ERROR_COLOR};")
    dialog.errors.hide()
    dialog.preview_model = PreviewModel(dialog)
    dialog.table = QTableView(dialog)
    dialog.table.setModel(dialog.preview_model)
    dialog.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    dialog.table.setWordWrap(False)
    dialog.table.setTextElideMode(Qt.TextElideMode.ElideRight)
    dialog.table.verticalHeader().hide()
    dialog.table.setAlternatingRowColors(True)
    header = dialog.table.horizontalHeader()
    header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    for column, width in ((COL_IMAGE, 120), (COL_NOW, 190)):
        header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(column, width)
    header.setSectionResizeMode(COL_AFTER, QHeaderView.ResizeMode.Stretch)  # what the user checks
    dialog.table.selectionModel().currentRowChanged.connect(lambda *_: dialog._show_row_detail())
    # Captions are long and rows are one line: the current row is shown in full below.
    dialog.row_detail = QLabel("", dialog)
    dialog.row_detail.setWordWrap(True)
    dialog.row_detail.setTextFormat(Qt.TextFormat.RichText)
    dialog.row_detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    dialog.row_detail.setMinimumHeight(dialog.row_detail.fontMetrics().lineSpacing() * 4)
    dialog.row_detail.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
    dialog.counts = QLabel("", dialog)
    dialog.counts.setWordWrap(True)
    dialog.counts.setStyleSheet("font-weight: 600;")
    right = QVBoxLayout()
    right.setContentsMargins(0, 0, 0, 0)
    for widget in (dialog.headline, dialog.progress, dialog.state_label, dialog.errors):
        right.addWidget(widget)
    right.addWidget(dialog.table, 1)
    right.addWidget(dialog.row_detail)
    right.addWidget(dialog.counts)
    body = QHBoxLayout()
    body.addWidget(left_widget)
    body.addLayout(right, 1)

    # Start/Stop drive the job (left, under the settings); Apply/Close end the dialog (right).
    dialog.start_button = QPushButton("Start", dialog)
    dialog.stop_button = QPushButton("Stop", dialog)
    dialog.apply_button = QPushButton("Apply", dialog)
    dialog.close_button = QPushButton("Close", dialog)
    for button in (dialog.start_button, dialog.stop_button, dialog.apply_button, dialog.close_button):
        button.setAutoDefault(False)
        button.setMinimumWidth(96)
    dialog.apply_button.setMinimumWidth(150)  # room for "Apply to 1,234 images" without a jump
    dialog.stop_button.setEnabled(False)
    dialog.apply_button.setEnabled(False)
    dialog.start_button.setDefault(True)
    dialog.start_button.clicked.connect(dialog.start)
    dialog.stop_button.clicked.connect(dialog.stop)
    dialog.apply_button.clicked.connect(dialog.apply)
    dialog.close_button.clicked.connect(dialog.reject)
    buttons = QHBoxLayout()
    for button in (dialog.start_button, dialog.stop_button):
        buttons.addWidget(button)
    buttons.addStretch(1)
    for button in (dialog.apply_button, dialog.close_button):
        buttons.addWidget(button)
    layout = QVBoxLayout(dialog)
    layout.addLayout(body, 1)
    layout.addLayout(buttons)
