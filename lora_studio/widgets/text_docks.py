"""The image docks (Tags, Details) step aside while a text dataset is on screen, and come back after.

They have nothing to show for a text dataset, whose editor and rendering are on its page.
Whether each was open is remembered and restored, also in the layout saved at exit, so
that closing the app on a text dataset does not lose them for the next image dataset.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QDockWidget

IMAGE_DOCKS = ("tags", "details")


class TextDocks:
    """Hides and restores the image-only docks; ``on_dataset_tab()`` says whether the dataset tab is in front."""

    def __init__(self, docks: dict[str, QDockWidget], on_dataset_tab: Callable[[], bool]) -> None:
        self.docks = [docks[name] for name in IMAGE_DOCKS]
        self.on_dataset_tab = on_dataset_tab
        self.hidden: dict[QDockWidget, bool] | None = None  # each dock's visibility before a text dataset

    def text_shown(self, shown: bool) -> None:
        """A text dataset came on screen (True) or left it (False)."""
        if shown and self.hidden is None:
            # On another tab the docks are hidden already; what they return to is the tab's memory of them.
            self.hidden = {dock: (dock.isVisible() if self.on_dataset_tab() else getattr(dock, "_was_visible", True))
                           for dock in self.docks}
            for dock in self.docks:
                dock.hide()
                dock._was_visible = False
        elif not shown:
            self.restore()

    def restore(self) -> None:
        """Put the docks back as they were (before the layout is saved, or when an image dataset opens)."""
        if self.hidden is None:
            return
        for dock, visible in self.hidden.items():
            if self.on_dataset_tab():
                dock.setVisible(visible)
            else:
                dock._was_visible = visible  # shown again when the dataset tab comes back
        self.hidden = None
