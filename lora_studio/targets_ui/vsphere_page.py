"""The vSphere tab: vCenters (with their certificates) and three views of the one chosen.

- VMs: the inventory, power-on, "use as target", New VM…, and the selected VM's snapshots
- Hosts and GPUs: the cluster view (HA, DRS, GPUs free or used, the VMs on each host)
- Datastores: folders through vCenter, read-only, with what the VMs see at each path
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QHeaderView, QLabel, QMessageBox, QPushButton, QSplitter,
                               QTabWidget, QVBoxLayout, QWidget)

from ..boxes import column, push_button
from ..targets import (CertificateChanged, Target, TargetError, UntrustedCertificate, VCenter, VmRow, VSphereTarget,
                       forget_password, inventory, power_on, store_password)
from ..workers.tasks import TaskRunner
from .cluster_view import ClusterViewPage
from .datastore_browser import DatastoreBrowser
from .jobs import Captured, capture
from .models import ROW_ROLE, InventoryModel
from .new_vm_dialog import NewVmDialog
from .snapshot_panel import SnapshotPanel
from .store import TargetStore
from .tables import make_table
from .trust import TrustPrompts
from .vcenter_dialogs import VCenterDialog


class VSpherePage(QWidget):
    """One vCenter at a time: its VMs with power, host, CPUs, memory, GPUs, guest OS, IP and tools."""

    inventoryLoaded = Signal(int)      # number of VMs (tests wait on it)
    useVm = Signal(str, object, object)   # vCenter name, VmRow, Suggested or None: make a target of it

    def __init__(self, store: TargetStore, runner: TaskRunner, trust: TrustPrompts,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store, self.runner, self.trust = store, runner, trust
        self.dialog: VCenterDialog | None = None
        self.new_vm_dialog: NewVmDialog | None = None
        self.loading = False

        self.vcenter_box = QComboBox(self)
        self.vcenter_box.setObjectName("vcenterBox")
        self.vcenter_box.setMinimumContentsLength(18)
        self.vcenter_box.currentIndexChanged.connect(lambda _: self._vcenter_changed())
        add = QPushButton("Add vCenter…", self)
        add.clicked.connect(lambda: self.open_vcenter_dialog(None))
        self.edit_button = QPushButton("Edit…", self)
        self.edit_button.clicked.connect(lambda: self.open_vcenter_dialog(self.current_vcenter()))
        self.cert_button = QPushButton("Certificate…", self)
        self.cert_button.setToolTip("Show the vCenter's TLS certificate and trust it")
        self.cert_button.clicked.connect(lambda: self.show_certificate())
        self.remove_button = QPushButton("Remove", self)
        self.remove_button.clicked.connect(self.remove_vcenter)
        top = QHBoxLayout()
        top.addWidget(QLabel("vCenter:", self))
        top.addWidget(self.vcenter_box, 1)
        for button in (add, self.edit_button, self.cert_button, self.remove_button):
            top.addWidget(button)
        self.status = QLabel("Add your vCenter to browse its VMs.", self)
        self.status.setObjectName("inventoryStatus")
        self.status.setWordWrap(True)

        self.model = InventoryModel(self)
        self.table = make_table(self, self.model, "inventoryTable")
        self.table.setSortingEnabled(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())
        self.table.doubleClicked.connect(lambda _: self.use_selected())
        self.refresh_button = push_button("Refresh", self, self.refresh)
        self.new_vm_button = push_button("New VM…", self, self.open_new_vm_dialog, name="newVmButton",
                                         tip="Clone a trainer VM from a template: GPU, storage policy, cloud-init")
        self.power_button = push_button("Power on", self, self.power_on_selected, name="powerOnButton")
        self.use_button = push_button("Use this VM as a target…", self, self.use_selected, name="useVmButton")
        bottom = QHBoxLayout()
        bottom.addWidget(self.refresh_button)
        bottom.addWidget(self.new_vm_button)
        bottom.addStretch(1)
        bottom.addWidget(self.power_button)
        bottom.addWidget(self.use_button)
        self.snapshots = SnapshotPanel(self.current_vcenter, store.context, runner, self)
        self.snapshots.cloned.connect(lambda _: self.refresh())
        splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.addWidget(column(self, self.status, (self.table, 1), bottom))
        splitter.addWidget(self.snapshots)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        self.cluster = ClusterViewPage(self.current_vcenter, store.context, runner, self)
        self.browser = DatastoreBrowser(self.current_vcenter, store.context, self._vm_targets, runner, self)
        self.views = QTabWidget(self)
        self.views.setObjectName("vsphereViews")
        self.views.addTab(splitter, "VMs")
        self.views.addTab(self.cluster, "Hosts and GPUs")
        self.views.addTab(self.browser, "Datastores")
        self.views.currentChanged.connect(lambda _: self._view_shown())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.views, 1)
        store.changed.connect(self._reload)
        store.changed.connect(self.browser.show_selection)   # a new mapping changes what the VMs see
        self._reload()

    # -- vCenters ------------------------------------------------------------------------------
    def _reload(self) -> None:
        current = self.vcenter_box.currentText()
        names = [v.name for v in self.store.settings.vcenters]
        self.vcenter_box.blockSignals(True)
        self.vcenter_box.clear()
        self.vcenter_box.addItems(names)
        if current in names:
            self.vcenter_box.setCurrentText(current)
        self.vcenter_box.blockSignals(False)
        if current not in names:
            self._vcenter_changed()
        self._update_buttons()

    def current_vcenter(self) -> VCenter | None:
        """The vCenter shown."""
        name = self.vcenter_box.currentText()
        return next((v for v in self.store.settings.vcenters if v.name == name), None)

    def _vcenter_changed(self) -> None:
        self.model.set_rows([])
        self.snapshots.set_vm("")
        self.cluster.clear()
        self.browser.clear()
        self.status.setText("Add your vCenter to browse its VMs." if self.current_vcenter() is None else
                            "Press Refresh to list the VMs.")
        self._update_buttons()
        self._view_shown()   # the hosts or datastores view, when on screen, shows the new vCenter's

    def _update_buttons(self) -> None:
        has = self.current_vcenter() is not None
        for button in (self.edit_button, self.cert_button, self.remove_button, self.refresh_button,
                       self.new_vm_button):
            button.setEnabled(has and not self.loading)
        vm = self.selected_vm()
        self.snapshots.set_vm(vm.name if vm is not None else "")
        self.power_button.setEnabled(vm is not None and vm.power_state != "poweredOn" and not self.loading)
        self.use_button.setEnabled(vm is not None)

    def open_vcenter_dialog(self, vcenter: VCenter | None) -> VCenterDialog:
        """Add (or edit) a vCenter; then show its certificate for trust and list its VMs."""
        dialog = VCenterDialog(vcenter, self)
        self.dialog = dialog

        def accepted() -> None:
            new = dialog.result_vcenter
            try:
                self.store.put_vcenter(new, vcenter.name if vcenter else None)
            except (TargetError, OSError) as exc:
                self.trust.refused("vCenter not saved", str(exc))
                return
            self.vcenter_box.setCurrentText(new.name)
            password = dialog.password.text()
            if not password:
                self.refresh()
                return
            # The password goes to the keyring first, then the listing (which asks about the certificate).
            self.runner.start(store_password, new.secret_account(), password, on_done=lambda _: self.refresh(),
                              on_error=lambda m: self.trust.refused("Password not saved", m))

        dialog.accepted.connect(accepted)
        dialog.finished.connect(lambda _: dialog.deleteLater())
        dialog.open()
        return dialog

    def show_certificate(self, then=None) -> None:
        """Fetch and show the current vCenter's certificate; trusting it pins the thumbprint."""
        vcenter = self.current_vcenter()
        if vcenter is not None:
            self.status.setText(f"Reading the certificate of {vcenter.host}…")
            self.trust.ask_certificate(vcenter.name, then, on_error=self._failed)

    def remove_vcenter(self) -> None:
        """Forget the current vCenter and its saved password."""
        vcenter = self.current_vcenter()
        if vcenter is None:
            return
        answer = QMessageBox(QMessageBox.Icon.Question, "Remove vCenter",
                             f"Remove the vCenter {vcenter.name!r}? Targets on its VMs stop working until it is added "
                             "again.", QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self)

        def answered(button) -> None:
            if answer.standardButton(button) == QMessageBox.StandardButton.Yes:
                self.store.remove_vcenter(vcenter.name)
                self.runner.start(forget_password, vcenter.secret_account())
        answer.buttonClicked.connect(answered)
        answer.finished.connect(lambda _: answer.deleteLater())
        answer.open()

    # -- inventory ---------------------------------------------------------------------------------
    def refresh(self) -> None:
        """List the current vCenter's VMs in a worker."""
        vcenter = self.current_vcenter()
        if vcenter is None or self.loading:
            return
        self.loading = True
        self._update_buttons()
        self.status.setText(f"Listing the VMs of {vcenter.name}…")
        self.runner.start(capture, inventory, vcenter, self.store.context(),
                          on_done=lambda r: self._listed(vcenter, r), on_error=self._failed)

    def _failed(self, message: str) -> None:
        self.loading = False
        self._update_buttons()
        self.status.setText(f"<span style='color:#dc2626'>{message}</span>")

    def _listed(self, vcenter: VCenter, result: Captured) -> None:
        self.loading = False
        error = result.error
        if isinstance(error, UntrustedCertificate):
            self.status.setText("The certificate is not trusted yet: compare its thumbprint and trust it.")
            self.trust.ask_certificate(vcenter.name, self.refresh, on_error=self._failed)
        elif isinstance(error, CertificateChanged):
            self._failed(f"{error.message}")
            self.trust.refused("Connection refused", error.message, error.hint)
        elif error is not None:
            self._failed(f"{error.message} — {error.hint}" if error.hint else error.message)
        else:
            selected = self.selected_vm()
            self.model.set_rows(result.value)
            on = sum(r.power_state == "poweredOn" for r in result.value)
            gpus = sum(bool(r.gpus) for r in result.value)
            self.status.setText(f"{len(result.value)} VMs on {vcenter.name} ({vcenter.host}): {on} on, "
                                f"{gpus} with GPUs. Pick one and use it as a target.")
            if selected is not None:
                self.select_vm(selected.name)
            self.inventoryLoaded.emit(len(result.value))
        self._update_buttons()

    def selected_vm(self) -> VmRow | None:
        """The selected VM row."""
        rows = self.table.selectionModel().selectedRows()
        return rows[0].data(ROW_ROLE) if rows else None

    def select_vm(self, name: str) -> None:
        """Select the VM called ``name``."""
        for row, vm in enumerate(self.model.rows):
            if vm.name == name:
                self.table.selectRow(row)
                return

    def power_on_selected(self) -> None:
        """Power the selected VM on in a worker, then list again."""
        vcenter, vm = self.current_vcenter(), self.selected_vm()
        if vcenter is None or vm is None:
            return
        self.loading = True
        self._update_buttons()
        self.status.setText(f"Powering on {vm.name}…")

        def done(result: Captured) -> None:
            self.loading = False
            if result.error is not None:
                self._failed(f"{vm.name} was not powered on: {result.error.message} ({result.error.hint})")
                return
            self.refresh()

        self.runner.start(capture, power_on, vcenter, vm.name, self.store.context(), on_done=done, on_error=self._failed)

    def use_selected(self) -> None:
        """Make a target of the selected VM (the Targets tab opens its dialog, prefilled)."""
        vcenter, vm = self.current_vcenter(), self.selected_vm()
        if vcenter is not None and vm is not None:
            self.useVm.emit(vcenter.name, vm, None)

    # -- the other views ---------------------------------------------------------------------------
    def _vm_targets(self) -> list[Target]:
        """The vSphere targets on the vCenter shown (the datastore view says what each one sees)."""
        vcenter = self.current_vcenter()
        return [t for t in self.store.settings.targets
                if isinstance(t, VSphereTarget) and vcenter is not None and t.vcenter == vcenter.name]

    def _view_shown(self) -> None:
        """A view read for the first time when it is first shown (each one is a vCenter round trip)."""
        view = self.views.currentWidget()
        if view is self.cluster and not self.cluster.view:
            self.cluster.refresh()
        elif view is self.browser and self.browser.datastore.count() == 0:
            self.browser.refresh()

    def open_new_vm_dialog(self) -> NewVmDialog | None:
        """The New VM dialog for the current vCenter; a VM made there is listed, and may become a target."""
        vcenter = self.current_vcenter()
        if vcenter is None:
            return None
        dialog = NewVmDialog(vcenter, self.store.context, self.runner, self)
        self.new_vm_dialog = dialog
        dialog.workDone.connect(lambda outcome: self.refresh() if outcome == "made" else None)
        dialog.targetWanted.connect(lambda row, suggested: self.useVm.emit(vcenter.name, row, suggested))
        dialog.finished.connect(lambda _: dialog.deleteLater())
        dialog.open()
        return dialog
