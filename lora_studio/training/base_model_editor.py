"""The base_model field: the path, a badge with the model's family, and the workspace's models.

The badge says what the chosen file is ("SDXL", "SD 1.x") as soon as the settings check
has read its header; the Models menu lists the base models found in the workspace, each with
its family, so choosing one is a click rather than a file dialog on a share.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtWidgets import QLabel, QMenu, QToolButton, QWidget

from trainer.config.schema import Option
from trainer.model_family import Detection

from .model_finder import FoundModel
from .option_editors import PathEditor, relative_to

BADGE_STYLE = ("QLabel#familyBadge { border: 1px solid palette(mid); border-radius: 9px; padding: 1px 8px; "
               "font-weight: 600; }")
# The arrow is part of the text: Qt's own menu indicator sits on top of the last letters.
MENU_BUTTON_STYLE = "QToolButton#baseModelMenu::menu-indicator { image: none; width: 0px; }"


class BaseModelEditor(PathEditor):
    """A :class:`PathEditor` with a family badge and a menu of the workspace's base models."""

    def __init__(self, option: Option, base_dir: Callable[[], Path | None], parent: QWidget | None = None) -> None:
        super().__init__(option, base_dir, parent)
        self.badge = QLabel(self)
        self.badge.setObjectName("familyBadge")
        self.badge.setStyleSheet(BADGE_STYLE)
        self.badge.setVisible(False)
        self.models_button = QToolButton(self)
        self.models_button.setObjectName("baseModelMenu")
        self.models_button.setText("Models ▾")
        self.models_button.setStyleSheet(MENU_BUTTON_STYLE)
        self.models_button.setToolTip("Base models found in the workspace, with their family")
        self.models_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.models_menu = QMenu(self.models_button)
        self.models_button.setMenu(self.models_menu)
        layout = self.layout()
        layout.insertWidget(1, self.badge)
        layout.addWidget(self.models_button)
        self.set_models([])

    def set_family(self, detection: Detection | None) -> None:
        """Show the chosen model's family (None: no trainable model chosen, the badge hides)."""
        self.badge.setVisible(detection is not None)
        if detection is not None:
            self.badge.setText(detection.badge)
            self.badge.setToolTip(f"{detection.what[:1].upper()}{detection.what[1:]}: the form shows the options "
                                  f"{detection.spec.label} training uses")

    def set_models(self, models: list[FoundModel]) -> None:
        """Fill the Models menu with the workspace's base models."""
        self.models_menu.clear()
        if not models:
            action = self.models_menu.addAction("No base models found in the workspace — use Browse…")
            action.setEnabled(False)
            return
        base = self.base_dir()
        for model in models:
            shown = relative_to(model.path, base, allow_parent=True)
            action = self.models_menu.addAction(f"{model.detection.badge}\t{shown}")
            action.setToolTip(f"{model.path} — {model.detection.what}")
            action.triggered.connect(lambda _=False, path=shown: self._choose(path))

    def _choose(self, path: str) -> None:
        self.line.setText(path)  # textChanged -> changed: the form re-checks and the badge follows
