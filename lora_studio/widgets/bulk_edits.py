"""Bulk edits of the open dataset: the Bulk Edit dialog, and the tag panel's remove and rename."""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QWidget

from ..dialogs.bulk_dialog import BulkEditDialog
from ..tags import BulkEdit, Operation
from .caption_grid import CaptionGrid
from .dataset_controller import DatasetController
from .detail_pane import DetailPane
from .status_strip import StatusStrip

SCOPES = ("all", "filtered", "selected")


class BulkEdits(QObject):
    """Applies bulk edits to a scope of the grid (all, filtered, selected) as one undo step each."""

    def __init__(self, datasets: DatasetController, grid: CaptionGrid, detail: DetailPane, status: StatusStrip,
                 parent: QWidget) -> None:
        super().__init__(parent)
        self.datasets, self.grid, self.detail, self.status = datasets, grid, detail, status
        self.bulk_dialog: BulkEditDialog | None = None  # the last one opened

    def scope_rows(self, scope: str) -> list[int]:
        """Source rows of a bulk scope: 'all', 'filtered' or 'selected'."""
        if scope == "selected":
            return self.grid.selected_rows()
        if scope == "filtered":
            return self.grid.filtered_rows()
        return self.grid.all_rows()

    def run_bulk(self, edit: BulkEdit, scope: str) -> int:
        """Apply a bulk edit to a scope as one undo step; returns the number changed."""
        session = self.datasets.session
        if session is None:
            return 0
        self.detail.commit()
        changed = session.bulk(edit, self.scope_rows(scope), scope if scope != "all" else "")
        self.status.show_message(f"{edit.describe()}: {changed:,} caption{'s' if changed != 1 else ''} changed", 5000)
        return changed

    def remove_tag(self, tag: str) -> int:
        """Remove ``tag`` from every caption."""
        return self.run_bulk(BulkEdit(Operation.REMOVE_TAG, tag), "all")

    def rename_tag(self, old: str, new: str) -> int:
        """Rename the tag ``old`` to ``new`` in every caption (whole tags only)."""
        return self.run_bulk(BulkEdit(Operation.REPLACE, old, new, whole_tag=True, regex=False), "all")

    def open_bulk_dialog(self, operation: Operation) -> BulkEditDialog | None:
        """Open the bulk-edit dialog (non-blocking); it applies when accepted."""
        session = self.datasets.session
        if session is None:
            return None
        counts = {scope: len(self.scope_rows(scope)) for scope in SCOPES}

        def preview(edit: BulkEdit, scope: str) -> dict[int, tuple[str, str]]:
            return session.preview_bulk(edit, self.scope_rows(scope))

        dialog = BulkEditDialog(counts, preview, operation, self.parent())
        dialog.accepted.connect(lambda: self.run_bulk(dialog.edit(), dialog.scope()))
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()
        self.bulk_dialog = dialog
        return dialog
