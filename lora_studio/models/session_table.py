"""The table shape the dataset models share: one row per entry of the session on screen (images or text rows)."""

from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex

Index = QModelIndex | QPersistentModelIndex


class SessionTableModel(QAbstractTableModel):
    """A flat table: ``session.entries`` are its rows (none without a session), ``HEADERS`` its columns.

    :meth:`set_session` follows the session's signals that :meth:`_signals` names, and calls
    :meth:`_clear` to drop what was known of the previous one.
    """

    HEADERS: tuple[str, ...] = ()
    session = None  # the DatasetSession (or its text dataset kind) on screen

    def set_session(self, session) -> None:
        """Show another dataset (or none)."""
        self.beginResetModel()
        if self.session is not None:
            for signal, slot in self._signals(self.session):
                signal.disconnect(slot)
        self.session = session
        self._clear()
        if session is not None:
            for signal, slot in self._signals(session):
                signal.connect(slot)
        self.endResetModel()

    def _signals(self, session) -> list[tuple]:
        """``(signal, slot)`` pairs to follow while ``session`` is shown."""
        return []

    def _clear(self) -> None:
        """Forget what was known of the session shown before (the model is being reset)."""

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802
        """Rows of the session (0 under any parent: this is a flat table)."""
        if parent.isValid() or self.session is None:
            return 0
        return len(self.session.entries)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802
        """One column per header."""
        return 0 if parent.isValid() else len(self.HEADERS)
