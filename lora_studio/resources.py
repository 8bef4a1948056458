"""Icons from ``resources/icons`` (SVG), tinted for the current theme, sharp at any DPI."""

from __future__ import annotations

from functools import lru_cache

from PySide6.QtCore import QByteArray, QRectF, Qt
from PySide6.QtGui import QGuiApplication, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer

from .paths import resources_dir

SIZES = (16, 20, 24, 32, 48, 64)


def _text_color() -> str:
    app = QGuiApplication.instance()
    if app is None:
        return "#444444"
    return app.palette().color(QPalette.ColorRole.WindowText).name()


@lru_cache(maxsize=256)
def _icon(name: str, color: str) -> QIcon:
    path = resources_dir() / "icons" / f"{name}.svg"
    try:
        svg = path.read_text(encoding="utf-8").replace("currentColor", color)
    except OSError:
        return QIcon()  # a missing icon must never stop the app
    renderer = QSvgRenderer(QByteArray(svg.encode("utf-8")))
    result = QIcon()
    for size in SIZES:
        # Render at 2x and mark the device pixel ratio: crisp on high-DPI screens.
        pixmap = QPixmap(size * 2, size * 2)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        renderer.render(painter, QRectF(0, 0, size * 2, size * 2))
        painter.end()
        pixmap.setDevicePixelRatio(2.0)
        result.addPixmap(pixmap)
    return result


def icon(name: str) -> QIcon:
    """The icon ``resources/icons/<name>.svg`` in the theme's text colour."""
    return _icon(name, _text_color())


def clear_icon_cache() -> None:
    """Forget tinted icons (after a theme change)."""
    _icon.cache_clear()
