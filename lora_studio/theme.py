"""Light and dark themes that follow the operating system (Qt 6.5+ colour scheme)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

from .paths import resources_dir

ACCENT = "#6366f1"


def system_is_dark() -> bool:
    """Whether the OS asks for a dark scheme (unknown counts as light)."""
    hints = QGuiApplication.styleHints()
    return hints.colorScheme() == Qt.ColorScheme.Dark


def _palette(dark: bool) -> QPalette:
    p = QPalette()
    if dark:
        colors = {"window": "#1f2126", "base": "#16181c", "alt": "#1c1e23", "text": "#e6e7ea", "button": "#2a2d33",
                  "mid": "#3a3d44", "disabled": "#7b7f87", "tooltip": "#2a2d33"}
    else:
        colors = {"window": "#f4f5f7", "base": "#ffffff", "alt": "#f7f8fa", "text": "#1d2027", "button": "#eceef2",
                  "mid": "#c9ccd3", "disabled": "#9aa0a8", "tooltip": "#ffffff"}
    role = QPalette.ColorRole
    p.setColor(role.Window, QColor(colors["window"]))
    p.setColor(role.WindowText, QColor(colors["text"]))
    p.setColor(role.Base, QColor(colors["base"]))
    p.setColor(role.AlternateBase, QColor(colors["alt"]))
    p.setColor(role.Text, QColor(colors["text"]))
    p.setColor(role.Button, QColor(colors["button"]))
    p.setColor(role.ButtonText, QColor(colors["text"]))
    p.setColor(role.ToolTipBase, QColor(colors["tooltip"]))
    p.setColor(role.ToolTipText, QColor(colors["text"]))
    p.setColor(role.Mid, QColor(colors["mid"]))
    p.setColor(role.Highlight, QColor(ACCENT))
    p.setColor(role.HighlightedText, QColor("#ffffff"))
    p.setColor(role.Link, QColor(ACCENT))
    p.setColor(role.PlaceholderText, QColor(colors["disabled"]))
    for r in (role.Text, role.WindowText, role.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, r, QColor(colors["disabled"]))
    return p


def apply_theme(app: QApplication, mode: str = "system") -> bool:
    """Apply ``system``, ``light`` or ``dark``; returns whether the result is dark."""
    dark = system_is_dark() if mode == "system" else mode == "dark"
    app.setStyle("Fusion")
    app.setPalette(_palette(dark))
    sheet = resources_dir() / "themes" / ("dark.qss" if dark else "light.qss")
    try:
        app.setStyleSheet(sheet.read_text(encoding="utf-8"))
    except OSError:
        app.setStyleSheet("")
    app.setProperty("darkTheme", dark)
    return dark
