"""The Targets panel (a dock of the main window): the Targets tab and the vSphere tab.

It owns the :class:`TargetStore` both tabs edit and announces changes with
:attr:`TargetsPanel.targetsChanged`, so the Train tab's "Run on:" list follows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QTabWidget, QVBoxLayout, QWidget

from ..targets import VmRow
from ..workers.tasks import TaskRunner
from .store import TargetStore
from .target_dialog import Suggested
from .targets_page import TargetsPage
from .trust import TrustPrompts
from .vsphere_page import VSpherePage

TARGETS, VSPHERE = range(2)


class TargetsPanel(QWidget):
    """Where training runs: targets, their preflight, and vCenter inventories."""

    targetsChanged = Signal()

    def __init__(self, runner: TaskRunner, workspace: Callable[[], Path | None] = lambda: None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("TargetsPanel")
        self.store = TargetStore(self)
        self.store.load()
        self.trust = TrustPrompts(self.store, runner, self)
        self.targets = TargetsPage(self.store, runner, self.trust, workspace, self)
        self.vsphere = VSpherePage(self.store, runner, self.trust, self)
        self.tabs = QTabWidget(self)
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.targets, "Targets")
        self.tabs.addTab(self.vsphere, "vSphere")
        self.load_error = QLabel(self)
        self.load_error.setWordWrap(True)
        self.load_error.setStyleSheet("color: #dc2626;")
        self.load_error.setVisible(bool(self.store.load_error))
        self.load_error.setText(f"The saved targets could not be read: {self.store.load_error}")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.load_error)
        layout.addWidget(self.tabs, 1)
        self.store.changed.connect(self._changed)
        self.vsphere.useVm.connect(self.use_vm)

    def _changed(self) -> None:
        self.load_error.setVisible(bool(self.store.load_error))
        self.targetsChanged.emit()

    def use_vm(self, vcenter: str, vm: VmRow, suggested: Suggested | None = None) -> None:
        """Open a new vSphere target for ``vm`` on the Targets tab (``suggested``: from the New VM dialog)."""
        self.tabs.setCurrentIndex(TARGETS)
        self.targets.add_target("vsphere", vm=vm, vcenter=vcenter, suggested=suggested)

    def reveal(self) -> None:
        """Show the dock holding this panel, tall enough for the checks (docked at the bottom it starts low)."""
        dock = self.parentWidget()
        if not isinstance(dock, QDockWidget):
            self.show()
            return
        dock.show()
        dock.raise_()
        window = dock.parentWidget()
        if isinstance(window, QMainWindow) and not dock.isFloating():
            window.resizeDocks([dock], [max(dock.height(), 380)], Qt.Orientation.Vertical)

    def sizeHint(self) -> QSize:  # noqa: N802
        """Room for the checks and the inventory's nine columns when the dock first opens."""
        return QSize(1000, 400)

    def showEvent(self, event) -> None:  # noqa: N802
        """Pick up configs made since the panel was last shown."""
        self.targets.refresh_configs()
        super().showEvent(event)
