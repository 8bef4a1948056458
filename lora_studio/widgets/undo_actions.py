"""Undo and Redo: one pair of actions for the menus and the toolbar, following the open dataset's stack."""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtGui import QKeySequence, QUndoGroup

from ..editing.session import DatasetSession
from ..resources import icon


class UndoActions(QObject):
    """``undo`` and ``redo`` act on the session followed; with none they are disabled.

    Their text names the step ("Undo Add tag …"), as a stack's own actions would, but they
    stay the same objects when another dataset opens, so menus and toolbar keep them.
    """

    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self.group = QUndoGroup(self)
        self.undo = self.group.createUndoAction(parent, "&Undo")
        self.redo = self.group.createRedoAction(parent, "&Redo")
        self.undo.setShortcut(QKeySequence(QKeySequence.StandardKey.Undo))
        # Some platforms bind no Redo key; Ctrl+Shift+Z is the common one.
        redo_keys = QKeySequence.keyBindings(QKeySequence.StandardKey.Redo)
        self.redo.setShortcuts(redo_keys or [QKeySequence("Ctrl+Shift+Z")])
        for action, name in ((self.undo, "undo"), (self.redo, "redo")):
            action.setIcon(icon(name))
            action.setProperty("iconName", name)  # re-tinted with the theme

    def follow(self, session: DatasetSession | None) -> None:
        """Act on ``session``'s undo stack (None: no dataset open)."""
        if session is not None:
            self.group.addStack(session.undo_stack)  # a deleted stack leaves the group by itself
        self.group.setActiveStack(session.undo_stack if session is not None else None)
