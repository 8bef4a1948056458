"""Before the training settings on screen are set aside (the window closes, another config opens in
their place): settings that were changed and not saved are saved or let go, as the user says."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget

from ..training.page import TrainingPage

Button = QMessageBox.StandardButton


def may_set_aside(parent: QWidget, training: TrainingPage, before: str) -> bool:
    """Ask whether to save modified training settings ``before`` (``"closing"``, ``"opening another
    config"``); False when the user would rather stay with them."""
    if not training.is_modified():
        return True
    name = training.config_path.name if training.config_path else "The training settings"
    box = QMessageBox(QMessageBox.Icon.Question, "Unsaved training settings",
                      f"{name} has changes that are not saved. Save them before {before}?",
                      Button.Save | Button.Discard | Button.Cancel, parent)
    box.setObjectName("unsavedSettingsPrompt")
    box.setDefaultButton(Button.Save)
    answer = box.exec()
    if answer == Button.Cancel:
        return False
    return answer != Button.Save or training.save()
