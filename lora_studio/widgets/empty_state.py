"""A page with nothing to show yet: what it is for and what to do next, one click away."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from ..resources import icon

CAPTIONS_TITLE = "Caption a dataset"
CAPTIONS_TEXT = ("Open a workspace folder (for example the shared <b>/data/lora</b> or <b>Z:\\lora</b>) and pick "
                 "a dataset in the Workspace panel, or drop a folder here.<br>New here? Open the demo workspace.")


class EmptyState(QWidget):
    """A centred title, a short text, buttons for ``actions`` and an optional widget below them."""

    def __init__(self, actions: list[QAction], parent=None, *, title: str = CAPTIONS_TITLE, text: str = CAPTIONS_TEXT,
                 below: QWidget | None = None) -> None:
        super().__init__(parent)
        logo = QLabel(self)
        logo.setPixmap(icon("app").pixmap(QSize(72, 72)))
        logo.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title = QLabel(title, self)
        self.title.setObjectName("emptyTitle")
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title.setStyleSheet("font-size: 20px; font-weight: 600;")
        self.text = QLabel(text, self)
        self.text.setWordWrap(True)
        self.text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.text.setObjectName("hint")
        self.text.setFixedWidth(500)  # a wrapped label needs a fixed width to get its full height
        # ... and, centred in a layout (which then ignores height-for-width), a minimum height.
        self.text.setMinimumHeight(self.text.heightForWidth(500))
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.buttons: list[QToolButton] = []
        for action in actions:
            button = QToolButton(self)
            button.setDefaultAction(action)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            button.setIconSize(QSize(20, 20))
            button.setMinimumHeight(36)
            buttons.addWidget(button)
            self.buttons.append(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addStretch(2)
        layout.addWidget(logo)
        layout.addWidget(self.title)
        layout.addWidget(self.text, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addSpacing(12)
        layout.addLayout(buttons)
        if below is not None:
            layout.addSpacing(16)
            layout.addWidget(below, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(3)
