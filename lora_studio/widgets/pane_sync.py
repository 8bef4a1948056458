"""The side panes in step with the open dataset: the detail pane shows the current image, the tags their counts.

Typing in the detail pane goes to the session; captions changed elsewhere (the grid, a bulk
edit, undo, the disk) come back to the detail pane and, debounced, to the tag counts.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QTimer

from ..editing.session import DatasetSession
from ..models.caption_model import CaptionModel
from .caption_grid import CaptionGrid
from .detail_pane import DetailPane
from .tag_panel import TagPanel

# Recounting every tag of a big dataset on each keystroke would lag the typing.
TAG_RECOUNT_MS = 400


class PaneSync(QObject):
    """Keeps the detail pane and the tag panel showing the session it is given."""

    def __init__(self, model: CaptionModel, grid: CaptionGrid, detail: DetailPane, tags: TagPanel,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.model, self.grid, self.detail, self.tags = model, grid, detail, tags
        self.session: DatasetSession | None = None
        self._tag_timer = QTimer(self, singleShot=True, interval=TAG_RECOUNT_MS)
        self._tag_timer.timeout.connect(self.recount_tags)
        grid.currentRowChanged.connect(self.show_row)
        detail.captionEdited.connect(self._detail_edited)

    def set_session(self, session: DatasetSession | None) -> None:
        """Follow ``session`` (None: no dataset open)."""
        self.session = session
        if session is not None:
            session.captionsChanged.connect(self._captions_changed)
            session.datasetReset.connect(self.recount_tags)
            self.recount_tags()

    def recount_tags(self) -> None:
        """Count the tags of every caption now."""
        self.tags.model.recount(self.session.captions if self.session else [])

    def show_row(self, row: int) -> None:
        """Show the image at source ``row`` in the detail pane (-1: none)."""
        if self.session is None or row < 0 or row >= len(self.session.entries):
            self.detail.show_item(None, None, "", None)
            return
        entry = self.session.entries[row]
        self.detail.show_item(entry.rel, entry.path, self.session.captions[row], self.model.problem(entry.rel))

    def refresh_if_shown(self, rels: list[str]) -> None:
        """Show the current image again if it is one of ``rels`` (its problem was just found)."""
        if self.session is not None and self.detail.rel in rels:
            self.show_row(self.session.row_of.get(self.detail.rel, -1))

    def select(self, rel: str) -> None:
        """Make the image ``rel`` current (a problem chosen in the Problems pane)."""
        if self.session is not None and rel in self.session.row_of:
            self.grid.select_source_row(self.session.row_of[rel])

    def step(self, delta: int) -> None:
        """Make the image ``delta`` rows down (up when negative) the grid's order current."""
        view = self.grid.active_view()
        current = view.currentIndex()
        row = (current.row() if current.isValid() else -1) + delta
        if 0 <= row < self.grid.proxy.rowCount():
            self.grid.select_source_row(self.grid.proxy.mapToSource(self.grid.proxy.index(row, 0)).row())

    def _detail_edited(self, rel: str, text: str) -> None:
        if self.session is not None and rel in self.session.row_of:
            self.session.set_captions({rel: text}, f"Type in {Path(rel).name}", typing=True)

    def _captions_changed(self, rows: list[int]) -> None:
        self._tag_timer.start()
        if self.detail.rel is not None and self.session is not None:
            row = self.session.row_of.get(self.detail.rel)
            if row is not None and row in rows:
                self.detail.set_caption(self.session.captions[row])
