"""How wide the main window's docks may get, and how they share a window narrower than they were.

Qt restores the dock sizes saved with a big window into a small one by squeezing the docks
down to their minimum; without a minimum of their own, that is the width of a scroll bar.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow, QSizePolicy, QSpacerItem, QVBoxLayout, QWidget

# Enough for what each dock shows: a folder name of ~16 characters beside its image count;
# a tag beside its count; the zoom buttons above the image and a caption line worth reading.
MIN_WIDTHS = {"workspace": 220, "tags": 200, "details": 260}
# The first layout (before any saved one): the left and right docks at a 1400 px wide window.
FIRST_WIDTHS = {"workspace": 260, "details": 380}
FIRST_WINDOW_WIDTH = 1400


def set_min_widths(docks: dict[str, QDockWidget]) -> None:
    """Give the docks named in MIN_WIDTHS their minimum widths (more when their content needs it)."""
    for name, width in MIN_WIDTHS.items():
        dock = docks[name]
        content = dock.widget()
        # A floor beside the content rather than dock.setMinimumWidth(): with an explicit
        # minimum, a dock that once grew for its content (a long file name in Details)
        # keeps that width as its minimum for good, and the window can no longer shrink.
        holder = QWidget(dock)
        layout = QVBoxLayout(holder)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(content)
        layout.addItem(QSpacerItem(width, 0, QSizePolicy.Policy.Minimum, QSizePolicy.Policy.Fixed))
        dock.setWidget(holder)


def fit_side_docks(window: QMainWindow, docks: dict[str, QDockWidget]) -> bool:
    """Share out the width again when the docks could not keep their restored sizes.

    That is when the central widget is down to its minimum: the window is narrower than
    the saved layout needs. The left and right docks then get the first layout's shares
    of the window's width (scaled down to the room the central widget leaves), never
    less than their minimums. Returns whether the docks were resized.
    """
    central = window.centralWidget()
    if central is None or central.width() > central.minimumSizeHint().width():
        return False
    sides = [name for name in FIRST_WIDTHS if docks[name].isVisible() and not docks[name].isFloating()]
    if not sides:
        return False
    # What the visible side docks hold between them now is what the central widget leaves.
    room = sum(docks[name].width() for name in sides)
    wanted = {name: FIRST_WIDTHS[name] * window.width() / FIRST_WINDOW_WIDTH for name in sides}
    scale = min(1.0, room / sum(wanted.values()))
    widths = [max(MIN_WIDTHS[name], round(wanted[name] * scale)) for name in sides]
    window.resizeDocks([docks[name] for name in sides], widths, Qt.Orientation.Horizontal)
    return True
