"""The example as the model reads it: rendered through the chat template, the trained text highlighted.

Above the text: which template renders it (and why that one), and its tokens against
``cutoff_len`` — counted with the base model's tokenizer, or an estimate that says so.
Text past ``cutoff_len`` is struck through: training never sees it.
"""

from __future__ import annotations

import html

from PySide6.QtGui import QColor, QTextCharFormat, QTextCursor, QTextFormat
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QTextEdit, QVBoxLayout, QWidget

from ..chat.preview import ExamplePreview

TRAINED_COLOUR = QColor(46, 160, 67, 70)  # translucent: readable in the light and the dark theme
CUT_COLOUR = QColor("#9aa0a8")


class ChatPreviewView(QWidget):
    """Shows one :class:`~lora_studio.chat.preview.ExamplePreview`."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.heading = QLabel("Rendered for training", self)
        self.heading.setStyleSheet("font-weight: 600;")
        self.count = QLabel("", self)
        self.count.setWordWrap(True)
        self.note = QLabel("", self)
        self.note.setObjectName("hint")
        self.note.setWordWrap(True)
        self.text = QPlainTextEdit(self)
        self.text.setReadOnly(True)
        self.text.setObjectName("renderedExample")
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        swatch = TRAINED_COLOUR.name(QColor.NameFormat.HexArgb)
        self.legend = QLabel(f"<span style='background-color: {swatch}'>&nbsp;highlighted&nbsp;</span> trained: "
                             "the assistant's answers and their end-of-turn marker; the rest is the prompt, "
                             "which the model reads but is not trained to write.", self)
        self.legend.setObjectName("hint")
        self.legend.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        for widget in (self.heading, self.count, self.note):
            layout.addWidget(widget)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.legend)
        self.preview: ExamplePreview | None = None

    def show_preview(self, preview: ExamplePreview | None, template: str, note: str, cutoff_len: int,
                     exact: bool, counted_with: str) -> None:
        """Show ``preview`` (None: no example), rendered with ``template``; ``note`` explains the choices."""
        self.preview = preview
        self.note.setText(note)
        self.note.setVisible(bool(note))
        if preview is None:
            self.heading.setText("Rendered for training")
            self.count.setText("")
            self.text.setPlainText("")
            return
        self.heading.setText(f"Rendered with the {template} chat template")
        if preview.error:
            self.count.setText(f"<span style='color:#b45309'>⚠ Cannot render this example: "
                               f"{html.escape(preview.error)}</span>")
            self.text.setPlainText("")
            return
        approx = "" if exact else "≈ "
        over = preview.tokens > cutoff_len
        figure = f"<b>{approx}{preview.tokens:,} / {cutoff_len:,} tokens</b> (cutoff_len)"
        if over:
            dropped = "; no answer is left before the cut, so training drops this example" \
                if not preview.trained_tokens else ""
            figure = (f"<span style='color:#b45309'><b>{approx}{preview.tokens:,} / {cutoff_len:,} tokens</b>: the last "
                      f"{preview.tokens - cutoff_len:,} are past cutoff_len and cut off (struck through){dropped}</span>")
        where = "counted with " + counted_with if exact else "an estimate"
        self.count.setText(f"{figure} · {preview.trained_tokens:,} trained · {html.escape(where)}")
        self.text.setPlainText(preview.text)
        self._highlight(preview)

    def _highlight(self, preview: ExamplePreview) -> None:
        # Extra selections colour the text without editing the document (no undo, no reflow).
        selections = []
        document = self.text.document()
        at = _utf16_positions(preview.text)
        for start, end in preview.trained:
            selections.append(self._selection(document, at(start), at(end), background=TRAINED_COLOUR))
        if preview.cutoff_char is not None:
            cut = self._selection(document, at(preview.cutoff_char), at(len(preview.text)), foreground=CUT_COLOUR)
            cut.format.setFontStrikeOut(True)
            selections.append(cut)
        self.text.setExtraSelections(selections)

    def _selection(self, document, start: int, end: int, background: QColor | None = None,
                   foreground: QColor | None = None) -> QTextEdit.ExtraSelection:
        selection = QTextEdit.ExtraSelection()
        cursor = QTextCursor(document)
        cursor.setPosition(min(start, document.characterCount() - 1))
        cursor.setPosition(min(end, document.characterCount() - 1), QTextCursor.MoveMode.KeepAnchor)
        selection.cursor = cursor
        char_format = QTextCharFormat()
        if background is not None:
            char_format.setBackground(background)
        if foreground is not None:
            char_format.setForeground(foreground)
        selection.format = char_format
        return selection

    def trained_text(self) -> list[str]:
        """The highlighted pieces of the text shown (what a person sees as trained)."""
        return [s.cursor.selectedText().replace("\u2029", "\n") for s in self.text.extraSelections()
                if s.format.hasProperty(QTextFormat.Property.BackgroundBrush)]


def _utf16_positions(text: str):
    """Python offsets of ``text`` to Qt's (UTF-16: a character past U+FFFF counts twice)."""
    wide = [i for i, ch in enumerate(text) if ord(ch) > 0xFFFF]
    if not wide:
        return lambda pos: pos
    return lambda pos: pos + sum(1 for i in wide if i < pos)
