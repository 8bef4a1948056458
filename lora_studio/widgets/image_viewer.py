"""A large view of one image with zoom and fit; the image is decoded in a worker."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap, QWheelEvent
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsScene, QGraphicsSimpleTextItem, QGraphicsView

from ..workers.tasks import TaskRunner
from ..workers.thumbnails import decode_thumbnail, to_qimage

PREVIEW_PX = 2048  # enough for a detail pane; never the full 8000 px original


def _load_preview(path: Path) -> QImage:
    return to_qimage(decode_thumbnail(path, PREVIEW_PX))


class ImageViewer(QGraphicsView):
    """Shows an image fitted to the view; the wheel (with Ctrl) and the zoom actions zoom."""

    zoomChanged = Signal(float)
    loadFailed = Signal(str)

    def __init__(self, runner: TaskRunner, parent=None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.setScene(QGraphicsScene(self))
        self.item = QGraphicsPixmapItem()
        self.item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self.item)
        self.placeholder = QGraphicsSimpleTextItem("")
        self.placeholder.setBrush(QColor("#9aa0a8"))
        self.scene().addItem(self.placeholder)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setBackgroundBrush(QColor("#2b2d31"))
        self.setMinimumHeight(160)
        self.fit_mode = True
        self._path: str | None = None
        self.message = ""

    def _show_placeholder(self, text: str) -> None:
        self.placeholder.setText(text)
        self.placeholder.setVisible(bool(text))
        rect = self.placeholder.boundingRect()
        self.scene().setSceneRect(rect.adjusted(-20, -20, 20, 20))
        self.centerOn(self.placeholder)

    def show_image(self, path: Path | None, placeholder: str = "") -> None:
        """Load ``path`` in the background (None shows ``placeholder`` instead)."""
        self._path = str(path) if path else None
        self.item.setPixmap(QPixmap())
        self.resetTransform()
        self.zoomChanged.emit(0.0)
        if path is None:
            self._show_placeholder(placeholder)
            return
        self._show_placeholder("Loading…")
        wanted = str(path)

        def done(image: QImage) -> None:
            if self._path == wanted:  # the user may have moved on meanwhile
                self.placeholder.setVisible(False)
                self.item.setPixmap(QPixmap.fromImage(image))
                self.scene().setSceneRect(self.item.boundingRect())
                if self.fit_mode:
                    self.fit()

        def failed(message: str) -> None:
            if self._path == wanted:
                self.message = message
                self._show_placeholder("Cannot show this image")
                self.loadFailed.emit(message)

        self.runner.start(_load_preview, path, on_done=done, on_error=failed)

    def has_image(self) -> bool:
        """Whether an image is shown."""
        return not self.item.pixmap().isNull()

    def fit(self) -> None:
        """Scale the image to fit the view."""
        self.fit_mode = True
        if self.has_image():
            self.fitInView(self.item, Qt.AspectRatioMode.KeepAspectRatio)
            self.zoomChanged.emit(self.transform().m11())

    def zoom(self, factor: float) -> None:
        """Zoom by ``factor`` (1.25 in, 0.8 out), within 5%..800%."""
        self.fit_mode = False
        current = self.transform().m11()
        factor = max(0.05 / current, min(8.0 / current, factor))
        self.scale(factor, factor)
        self.zoomChanged.emit(self.transform().m11())

    def actual_size(self) -> None:
        """100%: one image pixel per screen pixel (of the preview)."""
        self.fit_mode = False
        self.resetTransform()
        self.zoomChanged.emit(1.0)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        """Ctrl+wheel zooms; the plain wheel scrolls."""
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom(1.25 if event.angleDelta().y() > 0 else 0.8)
            event.accept()
        else:
            super().wheelEvent(event)

    def resizeEvent(self, event) -> None:  # noqa: N802
        """Keep fitting while in fit mode."""
        super().resizeEvent(event)
        if self.fit_mode:
            self.fit()
