"""Small builders for the layouts and buttons every page makes the same way.

A page is mostly columns of widgets without margins of their own (the outer layout has
them) and buttons that do one thing when clicked; building them in one place keeps the
pages' code about what they show.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QLayout, QPushButton, QSpinBox, QVBoxLayout, QWidget

ColumnItem = QWidget | QLayout | tuple[QWidget, int]


def column(parent: QWidget, *items: ColumnItem) -> QWidget:
    """A plain widget holding ``items`` top to bottom, with no margins; ``(widget, n)`` gets stretch n."""
    holder = QWidget(parent)
    layout = QVBoxLayout(holder)
    layout.setContentsMargins(0, 0, 0, 0)
    for item in items:
        if isinstance(item, tuple):
            layout.addWidget(*item)
        elif isinstance(item, QLayout):
            layout.addLayout(item)
        else:
            layout.addWidget(item)
    return holder


def push_button(text: str, parent: QWidget, on_click: Callable[[], object], *, name: str = "", tip: str = "") -> QPushButton:
    """A push button that calls ``on_click`` (with no arguments) when clicked."""
    widget = QPushButton(text, parent)
    if name:
        widget.setObjectName(name)
    if tip:
        widget.setToolTip(tip)
    widget.clicked.connect(lambda _checked=False: on_click())
    return widget


def port_box(parent: QWidget, port: int) -> QSpinBox:
    """A spin box for a TCP port (1-65535), showing ``port``."""
    box = QSpinBox(parent)
    box.setRange(1, 65535)
    box.setValue(port)
    return box
