"""The selected example's texts, each in its own editor: system prompt, then every turn in order.

Typing reaches the session as the caption editor's does (:class:`~.typing_pace.TypingPace`),
as one undo step per field that merges while
typing continues. Changes from elsewhere (undo, find and replace, the disk) update the
texts in place, keeping the cursor, unless the row's structure changed (a turn added).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QFrame, QLabel, QPlainTextEdit, QPushButton, QScrollArea, QSizePolicy, QVBoxLayout,
                               QWidget)

from ..editing.text_session import TextDatasetSession
from ..storage.chat_fields import Field
from .typing_pace import TypingPace

# Each role's colour, the preview's too: the user's words blue, the assistant's green (what is trained).
ROLE_COLOURS = {"system": "#8a6d3b", "user": "#2f6fb3", "input": "#2f6fb3", "assistant": "#2e8b57", "text": "#2e8b57"}
MIN_LINES, MAX_LINES = 2, 12


class FieldEdit(QPlainTextEdit):
    """One text of the example; as tall as its text, within MIN_LINES..MAX_LINES (then it scrolls)."""

    def __init__(self, field: Field, parent=None) -> None:
        super().__init__(parent)
        self.field = field
        self.setTabChangesFocus(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setObjectName(f"field-{field.role}")
        self.document().documentLayout().documentSizeChanged.connect(lambda _size: self._fit())
        self._fit()

    def _fit(self) -> None:
        lines = max(MIN_LINES, min(MAX_LINES, int(self.document().documentLayout().documentSize().height())))
        margins = self.contentsMargins().top() + self.contentsMargins().bottom()
        self.setFixedHeight(lines * self.fontMetrics().lineSpacing() + 2 * int(self.document().documentMargin())
                            + margins + 2)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        """A narrower editor wraps into more lines: fit again."""
        super().resizeEvent(event)
        self._fit()


class ExampleEditor(QWidget):
    """The texts of one example, editable; emits edits for the session."""

    fieldEdited = Signal(int, tuple, str, str)  # row, path, new text, field label (typing, debounced)
    addSystemRequested = Signal(int)  # row

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.session: TextDatasetSession | None = None
        self.row = -1
        self.title = QLabel("No example selected", self)
        self.title.setStyleSheet("font-weight: 600;")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problem = QLabel("", self)
        self.problem.setObjectName("tokenWarning")
        self.problem.setWordWrap(True)
        self.problem.hide()
        self.body = QWidget(self)
        self.fields_layout = QVBoxLayout(self.body)
        self.fields_layout.setContentsMargins(0, 0, 6, 0)
        self.fields_layout.setSpacing(4)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self.body)
        self.add_system = QPushButton("Add a system prompt", self)
        self.add_system.setToolTip("Give this example a system prompt (an instruction before the conversation)")
        self.add_system.clicked.connect(lambda: self.addSystemRequested.emit(self.row))
        self.add_system.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 4, 8)
        layout.addWidget(self.title)
        layout.addWidget(self.problem)
        layout.addWidget(scroll, 1)
        self.editors: list[FieldEdit] = []
        self._shape: list[tuple[str, tuple]] = []
        self._pending: dict[tuple, FieldEdit] = {}
        self._loading = False
        self._pace = TypingPace(self.commit, self)

    def set_session(self, session: TextDatasetSession | None) -> None:
        """Follow another session (None: nothing open)."""
        self.commit()
        self.session = session
        self.show_row(-1)

    def show_row(self, row: int) -> None:
        """Show the example at source ``row`` (-1: none)."""
        self.commit()
        self.row = row
        self._rebuild()

    def refresh(self, rows: list[int]) -> None:
        """The session changed ``rows``: show the current one's new texts."""
        if self.row in rows:
            self._pace.cancel()  # the outside change wins over typing not yet committed
            self._pending.clear()
            self._rebuild()

    def _rebuild(self) -> None:
        session, row = self.session, self.row
        valid = session is not None and 0 <= row < len(session.entries)
        fields = session.parsed(row)[1] if valid else []
        shape = [(f.label, f.path) for f in fields]
        if valid and shape == self._shape and self.editors:
            self._update_texts(fields)
        else:
            self._build(fields)
        self._shape = shape
        if not valid:
            self.title.setText("No example selected")
            self.problem.hide()
            self.add_system.hide()
            return
        entry = session.entries[row]
        turns = sum(f.role in ("user", "assistant") for f in fields)
        self.title.setText(f"{session.where(row)} · {entry.fmt or 'unknown format'}"
                           + (f" · {turns} turn{'s' if turns != 1 else ''}" if turns else ""))
        _, issues = session.example(row)
        self.problem.setText("⚠ " + "; ".join(issues) + "." if issues else "")
        self.problem.setVisible(bool(issues))
        can_add = entry.editable and entry.fmt in ("alpaca", "sharegpt", "openai") \
            and not any(f.role == "system" for f in fields)
        self.add_system.setVisible(can_add)
        if not fields:
            self._add_raw(entry.raw)

    def _clear(self) -> None:
        while self.fields_layout.count():
            item = self.fields_layout.takeAt(0)
            if item.widget() is not None and item.widget() is not self.add_system:
                item.widget().deleteLater()
        self.editors = []

    def _build(self, fields: list[Field]) -> None:
        self._clear()
        self._loading = True
        for field in fields:
            label = QLabel(field.label, self.body)
            label.setStyleSheet(f"font-weight: 600; color: {ROLE_COLOURS.get(field.role, 'palette(text)')};")
            editor = FieldEdit(field, self.body)
            editor.setPlainText(field.text)
            editor.textChanged.connect(lambda e=editor: self._typed(e))
            self.fields_layout.addWidget(label)
            self.fields_layout.addWidget(editor)
            self.editors.append(editor)
        self.fields_layout.addWidget(self.add_system, 0, Qt.AlignmentFlag.AlignLeft)
        self.add_system.setParent(self.body)
        self.fields_layout.addStretch(1)
        self._loading = False

    def _add_raw(self, raw: str) -> None:
        """A row that is not a JSON object: its text, read-only, to be fixed in a text editor."""
        note = QLabel("This row is not a JSON object, so it cannot be edited here. Fix it in a text editor; "
                      "the row as it is in the file:", self.body)
        note.setWordWrap(True)
        note.setObjectName("hint")
        text = QPlainTextEdit(raw, self.body)
        text.setReadOnly(True)
        self.fields_layout.insertWidget(0, note)
        self.fields_layout.insertWidget(1, text, 1)

    def _update_texts(self, fields: list[Field]) -> None:
        self._loading = True
        for editor, field in zip(self.editors, fields):
            editor.field = field
            if editor.toPlainText() != field.text:
                position = editor.textCursor().position()
                editor.setPlainText(field.text)
                cursor = editor.textCursor()
                cursor.setPosition(min(position, len(field.text)))
                editor.setTextCursor(cursor)
        self._loading = False

    def _typed(self, editor: FieldEdit) -> None:
        if self._loading or self.row < 0:
            return
        self._pending[editor.field.path] = editor
        self._pace.typed()

    def commit(self) -> None:
        """Send pending typing to the session (also on selection change and before saving)."""
        self._pace.committed()
        pending, self._pending = self._pending, {}
        for path, editor in pending.items():
            if self.row >= 0:
                self.fieldEdited.emit(self.row, path, editor.toPlainText(), editor.field.label)
