"""What the window shows before a dataset is open: what to do next, one click away."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from ..resources import icon


class EmptyState(QWidget):
    """A centred welcome with buttons for opening a workspace or the demo."""

    def __init__(self, actions: list[QAction], parent=None) -> None:
        super().__init__(parent)
        logo = QLabel(self)
        logo.setPixmap(icon("app").pixmap(QSize(72, 72)))
        logo.setAlignment(Qt.AlignmentFlag.AlignCenter)
        title = QLabel("Caption a dataset", self)
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        title.setStyleSheet("font-size: 20px; font-weight: 600;")
        text = QLabel("Open a workspace folder (for example the shared <b>/data/lora</b> or <b>Z:\\lora</b>) and pick "
                      "a dataset in the Workspace panel, or drop a folder here.<br>New here? Open the demo workspace.",
                      self)
        text.setWordWrap(True)
        text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        text.setObjectName("hint")
        text.setFixedWidth(500)  # a wrapped label needs a fixed width to get its full height
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for action in actions:
            button = QToolButton(self)
            button.setDefaultAction(action)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            button.setIconSize(QSize(20, 20))
            button.setMinimumHeight(36)
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addStretch(2)
        layout.addWidget(logo)
        layout.addWidget(title)
        layout.addWidget(text, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addSpacing(12)
        layout.addLayout(buttons)
        layout.addStretch(3)
