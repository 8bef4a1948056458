"""The detail pane: the selected image large, and its caption in a multi-line editor."""

from __future__ import annotations

import textwrap
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QSyntaxHighlighter, QTextCharFormat
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QPlainTextEdit, QSplitter, QToolButton, QVBoxLayout, QWidget)

from ..resources import icon
from trainer.model_family import FAMILIES_BY_ID, SD
from trainer.wording import plural

from ..boxes import column
from ..tokens import count_tokens, token_cutoff, word_count
from ..workers.tasks import TaskRunner
from .image_viewer import ImageViewer
from .typing_pace import TypingPace


class OverLimitHighlighter(QSyntaxHighlighter):
    """Greys out and underlines the words past CLIP's 75-token window."""

    def __init__(self, document) -> None:
        super().__init__(document)
        self.cutoff: int | None = None
        self.format = QTextCharFormat()
        self.format.setForeground(QColor("#9aa0a8"))
        self.format.setUnderlineStyle(QTextCharFormat.UnderlineStyle.WaveUnderline)
        self.format.setUnderlineColor(QColor("#d97706"))

    def set_cutoff(self, cutoff: int | None) -> None:
        """Re-highlight when the cut-off position moved."""
        if cutoff != self.cutoff:
            self.cutoff = cutoff
            self.rehighlight()

    def highlightBlock(self, text: str) -> None:  # noqa: N802 - Qt's name
        """Format the part of this block that lies past the cut-off."""
        if self.cutoff is None:
            return
        start = self.currentBlock().position()
        begin = max(0, self.cutoff - start)
        if begin < len(text):
            self.setFormat(begin, len(text) - begin, self.format)


class DetailPane(QWidget):
    """Image viewer with zoom controls above a caption editor with word/token counts."""

    captionEdited = Signal(str, str)  # rel, new caption (typing, debounced)

    def __init__(self, runner: TaskRunner, parent=None) -> None:
        super().__init__(parent)
        self.rel: str | None = None
        self.family = SD  # whose token limit the counter shows (the training being edited sets it)
        self.viewer = ImageViewer(runner, self)
        self.title = QLabel("No image selected", self)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.title.setStyleSheet("font-weight: 600;")
        self.zoom_label = QLabel("", self)
        self.zoom_label.setObjectName("hint")
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(self.title, 1)
        buttons.addWidget(self.zoom_label)
        self._buttons: list[tuple[QToolButton, str]] = []
        for name, tip, slot in (("zoom-out", "Zoom out (Ctrl+-)", lambda: self.viewer.zoom(0.8)),
                                ("zoom-in", "Zoom in (Ctrl+=)", lambda: self.viewer.zoom(1.25)),
                                ("fit", "Fit to view (Ctrl+0)", self.viewer.fit)):
            button = QToolButton(self)
            button.setIcon(icon(name))
            button.setToolTip(tip)
            button.setAutoRaise(True)
            button.clicked.connect(slot)
            buttons.addWidget(button)
            self._buttons.append((button, name))
        self.viewer.zoomChanged.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f}%" if z else ""))

        self.editor = QPlainTextEdit(self)
        self.editor.setPlaceholderText("Describe the image: tags separated by commas, or a sentence…")
        self.editor.setTabChangesFocus(True)
        self.editor.setEnabled(False)
        self.highlighter = OverLimitHighlighter(self.editor.document())
        self.counts = QLabel("", self)
        self.counts.setObjectName("hint")
        self.warning = QLabel("", self)
        self.warning.setObjectName("tokenWarning")
        self.warning.setWordWrap(True)
        self.warning.hide()

        top = column(self, buttons, (self.viewer, 1))
        bottom = QWidget(self)
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 4, 0, 0)
        caption_label = QLabel("Caption", bottom)
        caption_label.setStyleSheet("font-weight: 600;")
        bottom_layout.addWidget(caption_label)
        bottom_layout.addWidget(self.editor, 1)
        bottom_layout.addWidget(self.counts)
        bottom_layout.addWidget(self.warning)
        self.splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.splitter.addWidget(top)
        self.splitter.addWidget(bottom)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.splitter)

        self._pace = TypingPace(self.commit, self)
        self._loading = False
        self.editor.textChanged.connect(self._text_changed)

    def retint(self) -> None:
        """Redraw the zoom buttons' icons after a theme change."""
        for button, name in self._buttons:
            button.setIcon(icon(name))

    def show_item(self, rel: str | None, path: Path | None, caption: str, problem: str | None) -> None:
        """Show an image and its caption (None: nothing selected)."""
        self.commit()
        self.rel = rel
        self.title.setText(rel or "No image selected")
        if rel is None:
            self.viewer.show_image(None, "Select an image")
        elif problem:
            self.viewer.show_image(None, "Cannot show this image:\n" + textwrap.fill(f"it {problem}.", 44))
        else:
            self.viewer.show_image(path)
        self.editor.setEnabled(rel is not None)
        self.set_caption(caption)

    def set_caption(self, caption: str) -> None:
        """Update the editor from outside (undo, bulk edit) without creating an edit."""
        self._pace.cancel()  # the outside change wins over typing not yet committed
        if self.editor.toPlainText() == caption:
            self._update_counts()
            return
        self._loading = True
        cursor_pos = self.editor.textCursor().position()
        self.editor.setPlainText(caption)
        cursor = self.editor.textCursor()
        cursor.setPosition(min(cursor_pos, len(caption)))
        self.editor.setTextCursor(cursor)
        self._loading = False
        self._update_counts()

    def _text_changed(self) -> None:
        self._update_counts()
        if self._loading or self.rel is None:
            return
        self._pace.typed()

    def commit(self) -> None:
        """Send pending typing to the session (also on selection change and on save)."""
        self._pace.committed()
        if self.rel is not None and not self._loading:
            self.captionEdited.emit(self.rel, self.editor.toPlainText())

    def _update_counts(self) -> None:
        text = self.editor.toPlainText()
        tokens, exact = count_tokens(text)
        approx = "" if exact else "≈"
        limit, encoder = self.family.token_limit, self.family.token_encoder
        if encoder != "CLIP":
            approx = "≈"  # counted with CLIP's tokenizer, the one the app has; T5's pieces differ a little
        self.counts.setText(f"{word_count(text)} words · {approx}{tokens} / {limit} {encoder} tokens")
        over = tokens > limit
        self.highlighter.set_cutoff(token_cutoff(text, limit) if over else None)
        self.warning.setVisible(over)
        if over:
            past = plural(tokens - limit, "token")
            self.warning.setText(f"⚠ {past} past the {limit}-token {encoder} limit: ignored "
                                 f"by {self.family.label} training (greyed out above). Shorten the caption or move "
                                 "key words to the front.")

    def set_family(self, family: str) -> None:
        """Count against the token limit of ``family`` (the base model of the training being edited)."""
        spec = FAMILIES_BY_ID.get(family, SD)
        if spec is not self.family:
            self.family = spec
            self._update_counts()
