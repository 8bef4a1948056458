"""Before the window closes: training settings that were changed and not saved are saved or let go."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget

from ..training.page import TrainingPage

Button = QMessageBox.StandardButton


def may_close(parent: QWidget, training: TrainingPage) -> bool:
    """Ask whether to save modified training settings; False when the user would rather stay."""
    if not training.is_modified():
        return True
    answer = QMessageBox.question(parent, "Unsaved training settings", "Save the training settings before closing?",
                                  Button.Save | Button.Discard | Button.Cancel)
    if answer == Button.Cancel:
        return False
    return answer != Button.Save or training.save()
