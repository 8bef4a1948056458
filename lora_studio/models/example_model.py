"""A text dataset's rows as a table: where, format, system, first user and assistant texts, turns, tokens.

One row per row of the files (bad rows too, so that a problem can go to its row). The
model reads from the :class:`~lora_studio.editing.text_session.TextDatasetSession`; it is
read-only (the detail editor edits, through the session). The caption filter proxy works
on it unchanged: ``REL_ROLE`` is ``file:line``, ``CAPTION_ROLE`` every text of the row,
``PROBLEM_ROLE`` what is wrong with it. Only the rows on screen are asked for, so the
table stays fast with 100,000 rows; a cell's text is the row's text on one line.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt

from ..editing.text_session import TextDatasetSession
from ..resources import icon
from ..storage.chat_fields import chat_preview
from .roles import CAPTION_ROLE, DIRTY_ROLE, PROBLEM_ROLE, REL_ROLE
from .session_table import SessionTableModel

COL_WHERE, COL_FORMAT, COL_SYSTEM, COL_USER, COL_ASSISTANT, COL_TURNS, COL_TOKENS = range(7)
HEADERS = ("File:line", "Format", "System", "User (first)", "Assistant (first)", "Turns", "Tokens")
Index = QModelIndex | QPersistentModelIndex
_SHOWN_CHARS = 300  # a cell shows one line: more would only be cut off by the view
_TIP_CHARS = 600


def one_line(text: str) -> str:
    """``text`` shortened, its line breaks shown as ⏎ (a table cell has one line)."""
    return text[:_SHOWN_CHARS].replace("\r\n", "\n").replace("\n", " ⏎ ")


class ExampleModel(SessionTableModel):
    """One row per example of the open text dataset (or none)."""

    HEADERS = HEADERS

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.session: TextDatasetSession | None = None
        self.tokens: dict[str, int] = {}  # rel -> token count, when a tokenizer is known
        self.tokens_exact = False

    def _signals(self, session: TextDatasetSession) -> list[tuple]:
        return [(session.captionsChanged, self._rows_changed), (session.datasetReset, self._reset),
                (session.problemsChanged, self._problems_changed)]

    def _clear(self) -> None:
        self.tokens = {}

    def set_tokens(self, counts: dict[str, int], exact: bool) -> None:
        """Token counts by row name (merged into those known); ``exact``: the model's tokenizer counted."""
        self.tokens.update(counts)
        if exact != self.tokens_exact:
            self.tokens_exact = exact
            self.headerDataChanged.emit(Qt.Orientation.Horizontal, COL_TOKENS, COL_TOKENS)
        if self.rowCount():
            self.dataChanged.emit(self.index(0, COL_TOKENS), self.index(self.rowCount() - 1, COL_TOKENS))

    # -- Qt model API ---------------------------------------------------------------------------
    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        """Column titles; the token column says whether its counts are exact."""
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(HEADERS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section] if section != COL_TOKENS or self.tokens_exact else "≈ Tokens"
        if role == Qt.ItemDataRole.ToolTipRole and section == COL_TOKENS:
            return ("Tokens of the example through the chat template, counted with the base model's tokenizer"
                    if self.tokens_exact else "Estimated tokens: open a training config whose base model is a "
                    "language model folder (Train tab) to count them exactly")
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        """Selectable, not editable here (the detail editor edits the selected example)."""
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        """Cell contents for each role."""
        session = self.session
        if not index.isValid() or session is None or not 0 <= index.row() < len(session.entries):
            return None
        row, col = index.row(), index.column()
        entry = session.entries[row]
        if role == REL_ROLE:
            return session.where(row)
        if role == PROBLEM_ROLE:
            return session.row_problems.get(row)
        if role == DIRTY_ROLE:
            return entry.rel in session.dirty
        if role == CAPTION_ROLE:
            _, fields = session.parsed(row)
            return "\n".join(f.text for f in fields) if fields else session.captions[row]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return self._text(row, col, role == Qt.ItemDataRole.ToolTipRole)
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (COL_TURNS, COL_TOKENS):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.DecorationRole and col == COL_WHERE:
            if row in session.row_problems:
                return icon("error")
            if entry.rel in session.dirty:
                return icon("edited")
        return None

    def _text(self, row: int, col: int, tip: bool):
        session = self.session
        assert session is not None
        entry = session.entries[row]
        if col == COL_WHERE:
            problem = session.row_problems.get(row)
            return f"{session.where(row)}: {problem}" if tip and problem else session.where(row)
        if col == COL_FORMAT:
            return entry.fmt or "?"
        _, fields = session.parsed(row)
        if not fields:
            # A row that is not JSON (or has no texts): its raw text, so that it can be recognised.
            return (entry.raw[:_TIP_CHARS] if tip else one_line(entry.raw)) if col == COL_USER else None
        system, user, assistant, turns = chat_preview(fields)
        if col == COL_TURNS:
            return None if tip else turns
        if col == COL_TOKENS:
            count = self.tokens.get(entry.rel)
            return None if tip or count is None else count
        text = {COL_SYSTEM: system, COL_USER: user, COL_ASSISTANT: assistant}.get(col, "")
        return text[:_TIP_CHARS] if tip else one_line(text)

    # -- updates ----------------------------------------------------------------------------------
    def _rows_changed(self, rows: list[int]) -> None:
        if not rows:
            return
        # Token counts of edited rows are counted again by the controller, which calls set_tokens.
        self.dataChanged.emit(self.index(rows[0], 0), self.index(rows[-1], len(HEADERS) - 1))

    def _problems_changed(self) -> None:
        if self.rowCount():
            self.dataChanged.emit(self.index(0, 0), self.index(self.rowCount() - 1, 0))

    def _reset(self) -> None:
        self.beginResetModel()
        self.tokens = {}
        self.endResetModel()
