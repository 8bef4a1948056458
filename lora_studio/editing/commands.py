"""Undo commands for caption edits.

A command stores only the captions it changed (``{rel: (old, new)}``), so a bulk edit
over 3 of 10,000 images costs three entries, and undo memory grows with the change,
not with the dataset. Commands are keyed by the image's relative path, not by row, so
they stay valid when a reload adds or removes images.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtGui import QUndoCommand

if TYPE_CHECKING:
    from .session import DatasetSession

TYPING_ID = 1001


class SetCaptionsCommand(QUndoCommand):
    """Set the captions of some images; undo restores the old ones."""

    def __init__(self, session: "DatasetSession", changes: dict[str, tuple[str, str]], text: str,
                 typing: bool = False) -> None:
        super().__init__(text)
        self.session = session
        self.changes = changes
        self.typing = typing

    def redo(self) -> None:
        """Apply the new captions."""
        self.session.apply({rel: new for rel, (_, new) in self.changes.items()})

    def undo(self) -> None:
        """Put the old captions back."""
        self.session.apply({rel: old for rel, (old, _) in self.changes.items()})

    def id(self) -> int:  # noqa: A003 - Qt's name
        """Typing in one caption merges into one undo step."""
        return TYPING_ID if self.typing else -1

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt's name
        """Merge consecutive typing in the same caption."""
        if not isinstance(other, SetCaptionsCommand) or not other.typing:
            return False
        if set(other.changes) != set(self.changes) or len(self.changes) != 1:
            return False
        rel = next(iter(self.changes))
        self.changes = {rel: (self.changes[rel][0], other.changes[rel][1])}
        return True
