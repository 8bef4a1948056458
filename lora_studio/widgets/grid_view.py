"""The icon grid's view: cards whose columns exactly fill the width, and thumbnail zoom."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QResizeEvent, QWheelEvent
from PySide6.QtWidgets import QListView, QStyle, QWidget

from .grid_delegate import THUMB, ThumbnailDelegate, cell_height, cell_width

MIN_THUMB = 96
MAX_THUMB = 320  # thumbnails are cached at 192 px; a little upscaling still looks fine
ZOOM_STEP = 1.15


class ThumbnailGridView(QListView):
    """A wrapping icon-mode list whose cells are stretched so that N columns fill the viewport.

    A plain icon view lays out fixed-size cards and leaves whatever does not fit a whole
    card as an empty strip at the right. Here the user picks a preferred thumbnail size
    (Ctrl+wheel); on every resize the view picks the column count whose cells come
    closest to that size and stretches or shrinks the cells a little so that the columns
    fill the width exactly.
    """

    thumbSizeChanged = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)  # lets Qt lay out 10,000 cards without asking each
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        # Cards tile the grid exactly (grid size == card size); the delegate draws the gap.
        self.setSpacing(0)
        self.delegate = ThumbnailDelegate(self)
        self.setItemDelegate(self.delegate)
        self._thumb = THUMB
        self._fit_columns()

    # -- zoom ---------------------------------------------------------------------------------
    def thumb_size(self) -> int:
        """The preferred thumbnail side in pixels; cells are stretched a little to fill the width."""
        return self._thumb

    def set_thumb_size(self, px: int) -> None:
        """Zoom the thumbnails to about ``px`` (kept within MIN_THUMB..MAX_THUMB)."""
        px = max(MIN_THUMB, min(MAX_THUMB, int(px)))
        if px == self._thumb:
            return
        self._thumb = px
        self._fit_columns()
        current = self.currentIndex()
        if current.isValid():
            self.scrollTo(current)  # zooming should not lose the user's place
        self.thumbSizeChanged.emit(px)

    def zoom(self, steps: int) -> None:
        """Larger (``steps`` > 0) or smaller thumbnails, ``ZOOM_STEP`` per step."""
        self.set_thumb_size(round(self._thumb * ZOOM_STEP ** steps))

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        """Ctrl+wheel zooms the thumbnails; the plain wheel scrolls."""
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            delta = event.angleDelta().y()
            if delta:
                self.zoom(1 if delta > 0 else -1)
            event.accept()
            return
        super().wheelEvent(event)

    # -- layout -------------------------------------------------------------------------------
    def columns(self) -> int:
        """How many cards a row holds at the current width."""
        cell = self.gridSize()
        return max(1, self._available_width() // cell.width()) if cell.isValid() else 1

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        """Refit the columns before Qt lays the cards out again."""
        self._fit_columns()
        super().resizeEvent(event)

    def changeEvent(self, event) -> None:  # noqa: N802
        """A new font changes the cards' text height."""
        super().changeEvent(event)
        if event.type() == event.Type.FontChange:
            self._fit_columns()

    def _available_width(self) -> int:
        """The width Qt wraps the cards in: the viewport as if the scroll bar were shown.

        Mirrors QListViewPrivate::prepareItemsLayout, which reserves the vertical scroll
        bar's room even while it is hidden (so the columns do not flip as it comes and
        goes) and starts a new row once a card would reach this width, not pass it.
        """
        width = self.maximumViewportSize().width()
        style = self.style()
        if (self.verticalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAsNeeded
                and not style.pixelMetric(QStyle.PixelMetric.PM_ScrollView_ScrollBarOverlap, None,
                                          self.verticalScrollBar())):
            width -= style.pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent, None, self.verticalScrollBar())
            if style.styleHint(QStyle.StyleHint.SH_ScrollView_FrameOnlyAroundContents, None, self):
                width -= 2 * style.pixelMetric(QStyle.PixelMetric.PM_DefaultFrameWidth, None, self)
        return max(1, width - 1)  # Qt wraps when a card's right edge reaches the width

    def _fit_columns(self) -> None:
        """Set the grid size so that whole columns of about the preferred width fill the view."""
        available = self._available_width()
        preferred = cell_width(self._thumb)
        # The column count whose cells come closest to the preferred width: cells stay
        # within about a quarter of it (from two columns on) instead of growing up to
        # twice as wide, as rounding down would do.
        columns = max(1, round(available / preferred))
        while columns > 1 and available // columns < cell_width(MIN_THUMB):
            columns -= 1
        width = max(available // columns, cell_width(MIN_THUMB))
        size = QSize(width, cell_height(width, self.font()))
        if size != self.gridSize():
            self.delegate.cell = size
            # Setting the grid size makes Qt lay the items out again with the new size hint.
            self.setGridSize(size)
