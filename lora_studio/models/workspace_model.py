"""The workspace's folders as a tree: name, image count, and a badge for problems."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QStandardItem, QStandardItemModel

from trainer.wording import plural

from ..resources import icon
from ..storage.workspace_scan import FolderInfo

PATH_ROLE = Qt.ItemDataRole.UserRole + 1
PROBLEMS_ROLE = Qt.ItemDataRole.UserRole + 2


class WorkspaceModel(QStandardItemModel):
    """Read-only tree built from a ``FolderInfo`` scan."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setHorizontalHeaderLabels(["Folder", "Images"])

    def populate(self, root: FolderInfo) -> None:
        """Replace the tree with a new scan."""
        self.removeRows(0, self.rowCount())
        self.scan = root
        self.invisibleRootItem().appendRow(self._row(root, top=True))

    def first_dataset(self) -> str | None:
        """Path of the first dataset folder (breadth first)."""
        queue = [self.scan] if getattr(self, "scan", None) else []
        while queue:
            info = queue.pop(0)
            if info.is_dataset and info.total_images() and not info.error:
                return str(info.path)
            queue.extend(info.children)
        return None

    def _row(self, info: FolderInfo, top: bool = False) -> list[QStandardItem]:
        name = QStandardItem(info.path.name or str(info.path))
        name.setEditable(False)
        name.setData(str(info.path), PATH_ROLE)
        name.setData(len(info.problems), PROBLEMS_ROLE)
        count = QStandardItem(str(info.total_images()) if info.total_images() else ("text" if info.text_files else ""))
        count.setEditable(False)
        count.setData(int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter), Qt.ItemDataRole.TextAlignmentRole)
        if info.error:
            name.setIcon(icon("error"))
            name.setToolTip(f"{info.path} {info.error}")
        elif info.problems:
            name.setIcon(icon("warning"))
            shown = "\n".join(info.problems[:10])
            more = f"\n… and {len(info.problems) - 10} more" if len(info.problems) > 10 else ""
            name.setToolTip(f"{plural(len(info.problems), 'problem')}:\n{shown}{more}")
            count.setText(f"{count.text()} ⚠{len(info.problems)}")
        elif info.text_files:
            name.setIcon(icon("dataset"))
            shown = ", ".join(info.text_files[:5]) + (", …" if len(info.text_files) > 5 else "")
            name.setToolTip(f"{info.path}\nText dataset (examples for a language model): {shown}")
            count.setToolTip("A text dataset: open it to see its examples")
        else:
            name.setIcon(icon("dataset" if info.is_dataset else "folder"))
            name.setToolTip(f"{info.path}\n{plural(info.image_count, 'image')} in this folder")
        if top and not info.error and not info.problems:
            name.setIcon(icon("open"))
        for child in info.children:
            name.appendRow(self._row(child))
        return [name, count]

    def find_path(self, path: str):
        """The index of the folder at ``path`` (or an invalid index)."""
        matches = self.match(self.index(0, 0), PATH_ROLE, path, 1,
                             Qt.MatchFlag.MatchExactly | Qt.MatchFlag.MatchRecursive)
        return matches[0] if matches else self.index(-1, -1)
