"""The dataset's images as a table: file, size, caption, status.

The icon view shows column 0 (thumbnail + caption via its delegate); the table view
shows all columns. The model reads from the ``DatasetSession`` and writes edits back
through it (so every edit is an undo step and is journaled); it never opens dialogs.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSize, Qt
from PySide6.QtGui import QIcon, QPainter, QPixmap

from ..editing.session import DatasetSession
from ..resources import icon
from ..storage.image_check import ImageInfo
from ..workers.thumbnails import ThumbnailLoader
from .roles import CAPTION_ROLE, DIRTY_ROLE, PATH_ROLE, PROBLEM_ROLE, REL_ROLE, THUMB_ROLE
from .session_table import SessionTableModel

COL_FILE, COL_SIZE, COL_CAPTION, COL_STATUS = range(4)
TABLE_ICON = QSize(44, 32)
HEADERS = ("File", "Size", "Caption", "Status")
Index = QModelIndex | QPersistentModelIndex


class CaptionModel(SessionTableModel):
    """One row per image of the open dataset."""

    HEADERS = HEADERS

    def __init__(self, session: DatasetSession | None = None, thumbnails: ThumbnailLoader | None = None,
                 parent=None) -> None:
        super().__init__(parent)
        self.session: DatasetSession | None = None
        self.thumbnails = thumbnails
        self.info: dict[str, ImageInfo] = {}
        self._row_by_path: dict[str, int] = {}
        self._icons: OrderedDict[str, QIcon] = OrderedDict()
        self._icon_sources: dict[str, int] = {}
        if thumbnails is not None:
            thumbnails.signals.ready.connect(self._thumbnail_ready)
            thumbnails.signals.failed.connect(self._thumbnail_failed)
        if session is not None:
            self.set_session(session)

    def _signals(self, session: DatasetSession) -> list[tuple]:
        return [(session.captionsChanged, self._captions_changed), (session.datasetReset, self._dataset_reset)]

    def _clear(self) -> None:
        self.info = {}
        self._index_paths()

    def _index_paths(self) -> None:
        entries = self.session.entries if self.session else []
        self._row_by_path = {str(e.path): i for i, e in enumerate(entries)}

    # -- Qt model API ----------------------------------------------------------------------
    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        """Column titles."""
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole and 0 <= section < len(HEADERS):
            return HEADERS[section]
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        """Captions are editable in place (the file column too, for the icon view's editor)."""
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        base = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren
        if index.column() in (COL_FILE, COL_CAPTION):
            base |= Qt.ItemFlag.ItemIsEditable
        return base

    def problem(self, rel: str) -> str | None:
        """Why the image is broken, if it is (from the background check or the decoder)."""
        info = self.info.get(rel)
        return info.problem if info is not None else None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        """Cell contents for each role."""
        if not index.isValid() or self.session is None or not 0 <= index.row() < len(self.session.entries):
            return None
        row, col = index.row(), index.column()
        entry = self.session.entries[row]
        caption = self.session.captions[row]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            if col == COL_FILE:
                return caption if role == Qt.ItemDataRole.EditRole else entry.rel
            if col == COL_SIZE:
                info = self.info.get(entry.rel)
                return f"{info.width} × {info.height}" if info and info.width else ""
            if col == COL_CAPTION:
                return caption
            if col == COL_STATUS:
                return self._status(entry.rel, caption)
            return None
        if role == REL_ROLE:
            return entry.rel
        if role == CAPTION_ROLE:
            return caption
        if role == PROBLEM_ROLE:
            return self.problem(entry.rel)
        if role == DIRTY_ROLE:
            return entry.rel in self.session.dirty
        if role == PATH_ROLE:
            return str(entry.path)
        if role == THUMB_ROLE and self.thumbnails is not None:
            return self.thumbnails.pixmap(entry.path, entry.file_size, entry.mtime_ns)
        if role == Qt.ItemDataRole.DecorationRole and col == COL_FILE and self.thumbnails is not None:
            pixmap = self.thumbnails.pixmap(entry.path, entry.file_size, entry.mtime_ns)
            return self._table_icon(str(entry.path), pixmap) if pixmap is not None else None
        if role == Qt.ItemDataRole.DecorationRole and col == COL_STATUS:
            if self.problem(entry.rel):
                return icon("error")
            if entry.rel in self.session.dirty:
                return icon("edited")
            return None
        if role == Qt.ItemDataRole.ToolTipRole:
            problem = self.problem(entry.rel)
            return f"{entry.rel}: {problem}" if problem else entry.rel
        return None

    def _table_icon(self, key: str, pixmap: QPixmap) -> QIcon:
        """The thumbnail centred on a fixed-size canvas, so file names line up in the table."""
        icon_ = self._icons.get(key)
        if icon_ is not None and pixmap.cacheKey() == self._icon_sources.get(key):
            return icon_
        canvas = QPixmap(TABLE_ICON)
        canvas.fill(Qt.GlobalColor.transparent)
        scaled = pixmap.scaled(TABLE_ICON, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
        painter = QPainter(canvas)
        painter.drawPixmap((TABLE_ICON.width() - scaled.width()) // 2, (TABLE_ICON.height() - scaled.height()) // 2, scaled)
        painter.end()
        icon_ = QIcon(canvas)
        self._icons[key] = icon_
        self._icon_sources[key] = pixmap.cacheKey()
        while len(self._icons) > 600:  # bounded like every other cache of the grid
            old, _ = self._icons.popitem(last=False)
            self._icon_sources.pop(old, None)
        return icon_

    def _status(self, rel: str, caption: str) -> str:
        problem = self.problem(rel)
        if problem:
            return f"Error: {problem}"
        if self.session is not None and rel in self.session.dirty:
            return "Edited"
        return "" if caption.strip() else "No caption"

    def setData(self, index: Index, value, role: int = Qt.ItemDataRole.EditRole) -> bool:  # noqa: N802
        """An inline edit: an undo step named after the image (live commits of one edit merge)."""
        if role != Qt.ItemDataRole.EditRole or not index.isValid() or self.session is None:
            return False
        if index.column() not in (COL_FILE, COL_CAPTION):
            return False
        rel = self.session.entries[index.row()].rel
        self.session.set_captions({rel: str(value)}, f"Edit caption of {Path(rel).name}", typing=True)
        return True

    # -- updates ------------------------------------------------------------------------------
    def _captions_changed(self, rows: list[int]) -> None:
        if not rows:
            return
        # One signal for the changed span keeps a 10,000-row bulk edit fast.
        self.dataChanged.emit(self.index(rows[0], 0), self.index(rows[-1], len(HEADERS) - 1))

    def _dataset_reset(self) -> None:
        self.beginResetModel()
        self._index_paths()
        self.endResetModel()

    def set_image_info(self, infos: dict[str, ImageInfo]) -> None:
        """Merge results of the background image check."""
        if self.session is None:
            return
        self.info.update(infos)
        rows = sorted(self.session.row_of[rel] for rel in infos if rel in self.session.row_of)
        if rows:
            # Not the caption column: an open caption editor there must not be refreshed.
            self.dataChanged.emit(self.index(rows[0], COL_FILE), self.index(rows[-1], COL_SIZE))
            self.dataChanged.emit(self.index(rows[0], COL_STATUS), self.index(rows[-1], COL_STATUS))

    def _thumbnail_ready(self, path: str, _image) -> None:
        row = self._row_by_path.get(path)
        if row is not None:
            index = self.index(row, COL_FILE)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole, THUMB_ROLE])

    def _thumbnail_failed(self, path: str, reason: str) -> None:
        row = self._row_by_path.get(path)
        if row is None or self.session is None:
            return
        rel = self.session.entries[row].rel
        old = self.info.get(rel)
        if old is None or not old.problem:
            self.set_image_info({rel: ImageInfo(old.width if old else 0, old.height if old else 0,
                                                f"cannot be decoded ({reason})")})
