"""View > Theme: follow the system, light or dark; the choice is applied at once and remembered."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QActionGroup
from PySide6.QtWidgets import QApplication, QMenu, QWidget

from ..resources import clear_icon_cache
from ..settings import Settings
from ..theme import apply_theme

THEMES = (("system", "Follow System"), ("light", "Light"), ("dark", "Dark"))


class ThemeMenu(QObject):
    """Owns the Theme menu; ``themeChanged`` tells the window to re-tint its monochrome icons."""

    themeChanged = Signal(str)  # the mode now applied; the icon cache is cleared already

    def __init__(self, settings: Settings, parent: QWidget) -> None:
        super().__init__(parent)
        self.settings = settings
        self.menu = QMenu("T&heme", parent)
        group = QActionGroup(self)
        for mode, label in THEMES:
            action = self.menu.addAction(label)
            action.setCheckable(True)
            action.setChecked(settings.theme == mode)
            group.addAction(action)
            action.triggered.connect(lambda _=False, m=mode: self.set_theme(m))

    def set_theme(self, mode: str) -> None:
        """Apply a theme ('system', 'light', 'dark') and remember it."""
        self.settings.theme = mode
        apply_theme(QApplication.instance(), mode)
        clear_icon_cache()  # the icons are drawn in the theme's text colour
        self.themeChanged.emit(mode)
