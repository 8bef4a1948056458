"""Tag frequencies across the dataset, most frequent first."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from ..tags import tag_counts

Index = QModelIndex | QPersistentModelIndex


class TagFrequencyModel(QAbstractTableModel):
    """Two columns: tag and the number of captions that contain it."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._rows: list[tuple[str, int]] = []

    def recount(self, captions: Iterable[str]) -> None:
        """Recompute from all captions (cheap: a Counter over comma-split strings)."""
        rows = sorted(tag_counts(captions).items(), key=lambda kv: (-kv[1], kv[0].casefold()))
        if rows == self._rows:
            return
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()

    def tag_at(self, row: int) -> str:
        """The tag shown in ``row``."""
        return self._rows[row][0]

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802
        """Number of distinct tags."""
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802
        """Tag and count."""
        return 0 if parent.isValid() else 2

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        """Column titles."""
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole and section in (0, 1):
            return ("Tag", "Images")[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        """Tag text or its count (counts right-aligned)."""
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        tag, count = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return tag if index.column() == 0 else count
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() == 1:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{tag}: in {count} caption{'s' if count != 1 else ''}. Click to filter."
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        """Selectable, not editable."""
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren
