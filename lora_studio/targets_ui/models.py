"""Table models of the Targets panel: the targets, a preflight's checks, a vCenter's VMs.

Each holds a list of plain dataclasses (what the workers return) and is reset as a whole:
the lists are short, so there is no incremental update to get wrong.
"""

from __future__ import annotations

from typing import Any, Generic, Sequence, TypeVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor, QIcon

from ..resources import icon
from ..targets import Check, LocalTarget, SshTarget, Target, VmRow
from ..targets.model import RayTarget

Row = TypeVar("Row")
ROW_ROLE = Qt.ItemDataRole.UserRole + 1   # the row's dataclass
STATUS_ICONS = {"ok": "check", "warning": "warning", "error": "error"}
STATUS_COLORS = {"ok": "#15803d", "warning": "#a16207", "error": "#dc2626", "skipped": "#6b7280"}
POWER_TEXT = {"poweredOn": "On", "poweredOff": "Off", "suspended": "Suspended"}
TOOLS_TEXT = {"guestToolsRunning": "running", "guestToolsNotRunning": "not running",
              "guestToolsExecutingScripts": "starting"}


class RowsModel(QAbstractTableModel, Generic[Row]):
    """A read-only table over a list of rows; subclasses say what each column shows."""

    COLUMNS: tuple[str, ...] = ()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.rows: list[Row] = []

    def set_rows(self, rows: Sequence[Row]) -> None:
        """Show ``rows`` instead of the current ones."""
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole and 0 <= section < len(self.COLUMNS):
            return self.COLUMNS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self.rows) or index.column() >= len(self.COLUMNS):
            return None
        row = self.rows[index.row()]
        if role == ROW_ROLE:
            return row
        return self.cell(row, index.column(), role)

    def cell(self, row: Row, column: int, role: int) -> Any:
        """What ``row`` shows in ``column`` for ``role`` (None for nothing)."""
        raise NotImplementedError


def describe_where(target: Target) -> str:
    """Where a target runs, in a few words."""
    if isinstance(target, LocalTarget):
        return "this computer"
    if isinstance(target, SshTarget):
        port = f":{target.port}" if target.port != 22 else ""
        return f"{target.user}@{target.host}{port}"
    if isinstance(target, RayTarget):
        return f"Ray at {target.address} ({target.num_gpus:g} GPU, {target.num_cpus:g} CPU a run)"
    how = "SSH to its IP" if target.launch == "ssh" else "Guest Operations"
    return f"VM {target.vm} on {target.vcenter} ({how})"


def describe_mappings(target: Target) -> str:
    """The target's path mappings on one line."""
    if not target.mappings:
        return "same paths as here"
    return "; ".join(f"{m.local} → {m.target}" for m in target.mappings)


class TargetsModel(RowsModel[Target]):
    """The saved targets."""

    COLUMNS = ("Name", "Kind", "Where", "Paths")
    KINDS = {"local": "Local", "ssh": "SSH", "vsphere": "vSphere VM", "ray": "Ray cluster"}

    def cell(self, row: Target, column: int, role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            return (row.name, self.KINDS.get(row.kind, row.kind), describe_where(row), describe_mappings(row))[column]
        if role == Qt.ItemDataRole.ToolTipRole and column == 3:
            return describe_mappings(row).replace("; ", "\n")
        return None


class ChecksModel(RowsModel[Check]):
    """The checks of one preflight, each with its status icon, message and what to do."""

    COLUMNS = ("Check", "Result", "What to do")

    def cell(self, row: Check, column: int, role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            return (row.name.replace("_", " "), row.message, row.hint)[column]
        if role == Qt.ItemDataRole.DecorationRole and column == 0:
            name = STATUS_ICONS.get(row.status)
            return icon(name) if name else QIcon()
        if role == Qt.ItemDataRole.ForegroundRole and column == 0:
            return QColor(STATUS_COLORS.get(row.status, "#6b7280"))
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{row.status}: {row.message}" + (f"\n\n{row.hint}" if row.hint else "")
        if role == Qt.ItemDataRole.AccessibleTextRole and column == 0:
            return f"{row.name} {row.status}"
        return None


class InventoryModel(RowsModel[VmRow]):
    """The VMs of one vCenter with what matters for training on them."""

    COLUMNS = ("VM", "Power", "Host", "CPUs", "Memory", "GPUs", "Guest OS", "IP", "Tools")

    def cell(self, row: VmRow, column: int, role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            return (row.name, POWER_TEXT.get(row.power_state, row.power_state), row.host, str(row.cpus),
                    f"{row.memory_mb / 1024:.1f} GiB" if row.memory_mb >= 1024 else f"{row.memory_mb} MiB",
                    ", ".join(row.gpus) or "none", row.guest_os, row.ip or "—",
                    TOOLS_TEXT.get(row.tools, row.tools or "—"))[column]
        if role == Qt.ItemDataRole.ForegroundRole and column == 1:
            return QColor("#15803d" if row.power_state == "poweredOn" else "#6b7280")
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (3, 4):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole and column == 5 and row.gpus:
            return "\n".join(row.gpus)
        return None
