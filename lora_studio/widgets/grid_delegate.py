"""Painting one cell of the icon grid: thumbnail, file name, caption, badges."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPalette, QPen
from PySide6.QtWidgets import QLineEdit, QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from ..models.roles import CAPTION_ROLE, DIRTY_ROLE, PROBLEM_ROLE, REL_ROLE, THUMB_ROLE
from ..resources import icon

THUMB = 168  # the default thumbnail side; the grid widens cells to fill its width
MARGIN = 5  # around each card inside its grid cell: half the gap between two cards
PAD = 5  # between a card's border and its thumbnail or text
CAPTION_LINES = 3


def cell_height(width: int, font: QFont) -> int:
    """Height of a card cell ``width`` wide: a square thumbnail, the name, three caption lines."""
    line = QFontMetrics(font).lineSpacing()
    return thumb_side(width) + 2 * (MARGIN + PAD) + line * (CAPTION_LINES + 1) + 6


def cell_width(thumb: int) -> int:
    """Width of a card cell whose thumbnail is ``thumb`` pixels wide."""
    return thumb + 2 * (MARGIN + PAD)


def thumb_side(width: int) -> int:
    """Side of the square thumbnail area in a card cell ``width`` wide."""
    return max(16, width - 2 * (MARGIN + PAD))


def make_live_editor(delegate: QStyledItemDelegate, parent: QWidget, index: QModelIndex) -> QLineEdit:
    """A QLineEdit whose typing reaches the model (and the journal) within a second.

    Qt commits an inline editor only on Enter or focus loss; a crash mid-edit would lose
    the whole caption. Committing after a 300 ms pause, or every 800 ms of non-stop
    typing (the model merges these into one undo step per caption), keeps the loss
    under a second.
    """
    editor = QLineEdit(parent)
    editor.setPlaceholderText("Caption…")
    pause = QTimer(editor, singleShot=True, interval=300)
    longest = QTimer(editor, singleShot=True, interval=800)

    target = QPersistentModelIndex(index)

    def commit() -> None:
        pause.stop()
        longest.stop()
        if target.isValid():
            # Written straight to the model: the view's commitData() refuses editors it
            # is not currently closing, and the editor stays open.
            delegate.setModelData(editor, target.model(), QModelIndex(target))

    def edited(_text: str) -> None:
        pause.start()
        if not longest.isActive():
            longest.start()

    pause.timeout.connect(commit)
    longest.timeout.connect(commit)
    editor.textEdited.connect(edited)
    return editor


def keep_typing(editor: QWidget) -> bool:
    """Whether an open editor holds the user's typing that a model refresh must not replace.

    Qt pushes model changes into open editors (a thumbnail or image check finishing
    for that row would otherwise wipe what the user is typing).
    """
    return isinstance(editor, QLineEdit) and editor.isModified()


class CaptionDelegate(QStyledItemDelegate):
    """The table's caption column: the same live-committing editor as the cards."""

    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem, index: QModelIndex) -> QWidget:  # noqa: N802
        """A one-line editor that commits as the user types."""
        return make_live_editor(self, parent, index)

    def setEditorData(self, editor: QWidget, index: QModelIndex) -> None:  # noqa: N802
        """Load the caption, unless the user is typing in this editor."""
        if not keep_typing(editor):
            super().setEditorData(editor, index)


class ThumbnailDelegate(QStyledItemDelegate):
    """Card layout: square thumbnail area, then the name, then up to three caption lines.

    The view decides the cell size (``cell``, equal to its grid size) so that whole
    columns fill its width; the card and its thumbnail grow with the cell.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.cell = QSize()  # invalid until the view has measured itself

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802
        """Every card has the same size (the view uses uniform item sizes)."""
        if self.cell.isValid():
            return self.cell
        width = cell_width(THUMB)
        return QSize(width, cell_height(width, option.font))

    @staticmethod
    def thumb_rect(cell: QRect) -> QRect:
        """Where the thumbnail goes in a cell."""
        side = thumb_side(cell.width())
        return QRect(cell.left() + MARGIN + PAD, cell.top() + MARGIN + PAD, side, side)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        """Draw the card."""
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        # Thumbnails are cached at 192 px and drawn at the cell's size: scale them smoothly.
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        pal = option.palette
        rect = option.rect.adjusted(MARGIN, MARGIN, -MARGIN, -MARGIN)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        hovered = bool(option.state & QStyle.StateFlag.State_MouseOver)
        base = pal.color(QPalette.ColorRole.Base)
        border = pal.color(QPalette.ColorRole.Highlight) if selected else pal.color(QPalette.ColorRole.Mid)
        if selected:
            fill = QColor(pal.color(QPalette.ColorRole.Highlight))
            fill.setAlpha(40)
        else:
            fill = pal.color(QPalette.ColorRole.AlternateBase) if hovered else base
        painter.setPen(QPen(border, 2 if selected else 1))
        painter.setBrush(fill)
        painter.drawRoundedRect(rect, 8, 8)

        thumb_rect = self.thumb_rect(option.rect)
        pixmap = index.data(THUMB_ROLE)
        problem = index.data(PROBLEM_ROLE)
        if pixmap is not None and not pixmap.isNull():
            scaled = pixmap.size().scaled(thumb_rect.size(), Qt.AspectRatioMode.KeepAspectRatio)
            target = QRect(0, 0, scaled.width(), scaled.height())
            target.moveCenter(thumb_rect.center())
            painter.drawPixmap(target, pixmap)
        else:
            placeholder = QColor(pal.color(QPalette.ColorRole.Mid))
            placeholder.setAlpha(60)
            painter.fillRect(thumb_rect, placeholder)
            if problem:
                icon("error").paint(painter, QRect(thumb_rect.center().x() - 16, thumb_rect.center().y() - 16, 32, 32))
        if problem:
            icon("error").paint(painter, QRect(thumb_rect.right() - 22, thumb_rect.top() + 4, 18, 18))
        elif index.data(DIRTY_ROLE):
            icon("edited").paint(painter, QRect(thumb_rect.right() - 16, thumb_rect.top() + 4, 12, 12))

        fm = QFontMetrics(option.font)
        line = fm.lineSpacing()
        text_left = thumb_rect.left()
        text_width = thumb_rect.width()
        name_rect = QRect(text_left, thumb_rect.bottom() + 5, text_width, line)
        name_font = QFont(option.font)
        name_font.setBold(True)
        painter.setFont(name_font)
        painter.setPen(pal.color(QPalette.ColorRole.Text))
        rel = index.data(REL_ROLE) or ""
        painter.drawText(name_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         QFontMetrics(name_font).elidedText(rel.rsplit("/", 1)[-1], Qt.TextElideMode.ElideMiddle, text_width))
        painter.setFont(option.font)
        caption = index.data(CAPTION_ROLE) or ""
        caption_rect = QRect(text_left, name_rect.bottom() + 1, text_width, line * CAPTION_LINES)
        if problem and not caption:
            painter.setPen(QColor("#dc2626"))
            caption = problem
        elif not caption.strip():
            painter.setPen(pal.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text))
            caption = "No caption yet"
        else:
            painter.setPen(pal.color(QPalette.ColorRole.Text))
        painter.drawText(caption_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop | Qt.TextFlag.TextWordWrap,
                         self._elide_lines(fm, caption, text_width))
        painter.restore()

    @staticmethod
    def _elide_lines(fm: QFontMetrics, text: str, width: int) -> str:
        """Cut text to fit CAPTION_LINES lines, with an ellipsis when cut."""
        text = " ".join(text.split())
        if fm.horizontalAdvance(text) <= width * CAPTION_LINES * 0.92:
            return text
        budget = width * CAPTION_LINES * 0.9
        return fm.elidedText(text, Qt.TextElideMode.ElideRight, int(budget))

    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem, index: QModelIndex) -> QWidget:  # noqa: N802
        """A one-line editor over the caption area (typing is committed as it goes)."""
        return make_live_editor(self, parent, index)

    def setEditorData(self, editor: QWidget, index: QModelIndex) -> None:  # noqa: N802
        """Start from the current caption (never overwriting the user's typing)."""
        if not keep_typing(editor):
            editor.setText(index.data(CAPTION_ROLE) or "")

    def setModelData(self, editor: QWidget, model, index: QModelIndex) -> None:  # noqa: N802
        """Write through the model (an undo step)."""
        if editor.text() != (index.data(CAPTION_ROLE) or ""):
            model.setData(index, editor.text(), Qt.ItemDataRole.EditRole)

    def updateEditorGeometry(self, editor: QWidget, option: QStyleOptionViewItem, index: QModelIndex) -> None:  # noqa: N802
        """Place the editor where the caption is drawn."""
        thumb = self.thumb_rect(option.rect)
        height = editor.sizeHint().height()
        editor.setGeometry(QRect(thumb.left(), thumb.bottom() + 4, thumb.width(), height))
