"""Add or edit a target: this computer, an SSH host, or a vSphere VM.

Passwords typed here are handed back separately (:meth:`TargetDialog.secrets`) for the
keyring; they never become part of the target, so they cannot reach the settings file.
An empty password field on edit keeps the saved one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                               QLineEdit, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from ..boxes import port_box
from ..targets import LocalTarget, SshTarget, Target, TargetConfigError, VmRow, VSphereTarget
from ..targets.model import RAY_RUNS_AT_ONCE, RayTarget
from .mapping_editor import MappingEditor
from .ray_fields import RayFields

AUTH_LABELS = (("agent", "SSH agent / default keys"), ("key", "Key file"), ("password", "Password"))
LAUNCH_LABELS = (("ssh", "SSH to the VM's IP address"), ("guest_ops", "Guest Operations (VMware Tools, no network path)"))
KIND_TITLES = {"local": "This computer", "ssh": "SSH host", "vsphere": "vSphere VM", "ray": "Ray cluster"}


@dataclass(frozen=True)
class Suggested:
    """What a new target starts with when its VM was just made (the New VM dialog knows these)."""

    ssh_user: str = ""
    mappings: tuple[tuple[str, str], ...] = ()   # (folder here, folder on the target); "" here: the workspace


def _password_field(parent: QWidget) -> QLineEdit:
    field = QLineEdit(parent)
    field.setEchoMode(QLineEdit.EchoMode.Password)
    return field


def _combo(parent: QWidget, items: tuple[tuple[str, str], ...], current: str) -> QComboBox:
    combo = QComboBox(parent)
    for value, label in items:
        combo.addItem(label, value)
    combo.setCurrentIndex(max(0, combo.findData(current)))
    return combo


class TargetDialog(QDialog):
    """The fields of one target kind, a path-mapping table and the password for the keyring."""

    def __init__(self, kind: str, target: Target | None = None, *, vcenters: list[str] | None = None,
                 vm: VmRow | None = None, vcenter: str = "", workspace: Path | None = None,
                 suggested: Suggested | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind = kind
        self.original = target
        self.vm_ip = vm.ip if vm else ""
        self.suggested = suggested or Suggested()
        self.setWindowTitle(f"{'Edit' if target else 'Add'} target: {KIND_TITLES[kind]}")
        self.setMinimumWidth(620)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        self.form = form
        default_name = {"local": "This computer", "ssh": "", "vsphere": vm.name if vm else "", "ray": ""}[kind]
        self.name = QLineEdit(target.name if target else default_name, self)
        self.name.setPlaceholderText("a short name, e.g. gpu-box")
        form.addRow("Name:", self.name)
        self.python = QLineEdit(target.python if target else ("" if kind == "local" else "python3"), self)
        self.python.setPlaceholderText("this app's Python" if kind == "local" else "python3")
        self.python.setToolTip("The interpreter that has the trainer installed (python -m trainer), e.g. a venv's "
                               "bin/python")

        self.password = _password_field(self)
        self.password_label = QLabel("Password:", self)
        if kind == "ssh":
            self._ssh_fields(target if isinstance(target, SshTarget) else None)
        elif kind == "vsphere":
            self._vm_fields(target if isinstance(target, VSphereTarget) else None, vcenters or [], vm, vcenter)
        elif kind == "ray":  # no login: Ray's Jobs API takes the runs
            self.ray = RayFields(self, form, target if isinstance(target, RayTarget) else None)
            self.password.hide()
            self.password_label.hide()
        else:  # this computer: no login, so no password row (and no stray child widgets)
            self.password.hide()
            self.password_label.hide()
        form.addRow("Python on the target:", self.python)
        self.max_jobs = QSpinBox(self)
        self.max_jobs.setRange(1, 16)
        self.max_jobs.setValue(target.max_jobs if target else 1)
        self.max_jobs.setToolTip("How many runs may use this target at once (one per GPU, for example)")
        form.addRow("Runs at once:", self.max_jobs)
        if kind == "ray":  # Ray queues and places the runs; this caps only how many this app hands it
            self.max_jobs.setRange(1, 1000)
            self.max_jobs.setValue(target.max_jobs if target else RAY_RUNS_AT_ONCE)
            self.max_jobs.setToolTip("How many runs this app hands the cluster at once; Ray queues them until "
                                     "nodes are free")
            form.labelForField(self.max_jobs).setText("Runs sent at once:")
            form.labelForField(self.python).setText("Python on the nodes:")
        self.network_interface = QLineEdit(target.network_interface if target else "", self)
        self.network_interface.setObjectName("networkInterface")
        self.network_interface.setPlaceholderText("automatic (e.g. eth1 for the cluster network)")
        self.network_interface.setToolTip("For a run over several targets: the network interface its processes talk "
                                          "over (NCCL_SOCKET_IFNAME and GLOO_SOCKET_IFNAME); empty lets them choose")
        if kind != "local":  # this computer is never a node of a multi-node run
            form.addRow("Network interface:", self.network_interface)
        else:
            self.network_interface.hide()

        self.mappings = MappingEditor(target.mappings if target else (), workspace, self)
        if target is None:
            for here, there in self.suggested.mappings:
                self.mappings.add_row(here or str(workspace or ""), there)
        self.error = QLabel(self)
        self.error.setObjectName("dialogError")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #dc2626;")
        self.error.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel("<b>Path mapping</b>", self))
        layout.addWidget(self.mappings, 1)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self._update_rows()

    # -- kind-specific fields --------------------------------------------------------------
    def _ssh_fields(self, target: SshTarget | None) -> None:
        self.host = QLineEdit(target.host if target else "", self)
        self.host.setPlaceholderText("host name or IP address")
        self.port = port_box(self, target.port if target else 22)
        self.user = QLineEdit(target.user if target else "", self)
        self.auth = _combo(self, AUTH_LABELS, target.auth if target else "agent")
        self.key_file = QLineEdit(target.key_file if target else "", self)
        where = QHBoxLayout()
        where.addWidget(self.host, 1)
        where.addWidget(QLabel("port", self))
        where.addWidget(self.port)
        self.form.addRow("Host:", where)
        self.form.addRow("User:", self.user)
        self.form.addRow("Log in with:", self.auth)
        self.form.addRow("Key file:", self._key_row(self.key_file))
        self.form.addRow(self.password_label, self.password)
        self.auth.currentIndexChanged.connect(self._update_rows)

    def _vm_fields(self, target: VSphereTarget | None, vcenters: list[str], vm: VmRow | None, vcenter: str) -> None:
        self.vcenter = QComboBox(self)
        self.vcenter.addItems(vcenters)
        self.vcenter.setCurrentText(target.vcenter if target else vcenter)
        self.vm = QLineEdit(target.vm if target else (vm.name if vm else ""), self)
        self.vm.setPlaceholderText("the VM's name in the inventory")
        default_launch = target.launch if target else ("ssh" if vm is None or vm.ip else "guest_ops")
        self.launch = _combo(self, LAUNCH_LABELS, default_launch)
        self.user = QLineEdit(target.ssh_user if target else self.suggested.ssh_user, self)
        self.port = port_box(self, target.ssh_port if target else 22)
        self.auth = _combo(self, AUTH_LABELS, target.ssh_auth if target else "agent")
        self.key_file = QLineEdit(target.ssh_key_file if target else "", self)
        self.guest_user = QLineEdit(target.guest_user if target else "", self)
        self.form.addRow("vCenter:", self.vcenter)
        self.form.addRow("VM:", self.vm)
        self.form.addRow("Start the trainer by:", self.launch)
        self.user_row = QWidget(self)
        user_row = QHBoxLayout(self.user_row)
        user_row.setContentsMargins(0, 0, 0, 0)
        user_row.addWidget(self.user, 1)
        user_row.addWidget(QLabel("port", self.user_row))
        user_row.addWidget(self.port)
        self.form.addRow("SSH user:", self.user_row)
        self.form.addRow("Log in with:", self.auth)
        self.form.addRow("Key file:", self._key_row(self.key_file))
        self.form.addRow("Guest OS user:", self.guest_user)
        self.form.addRow(self.password_label, self.password)
        self.launch.currentIndexChanged.connect(self._update_rows)
        self.auth.currentIndexChanged.connect(self._update_rows)

    def _key_row(self, field: QLineEdit) -> QWidget:
        row = QWidget(self)
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        field.setPlaceholderText("~/.ssh/id_ed25519")
        browse = QPushButton("Browse…", row)
        browse.clicked.connect(lambda: self._pick_key(field))
        layout.addWidget(field, 1)
        layout.addWidget(browse)
        return row

    def _pick_key(self, field: QLineEdit) -> None:
        chosen, _ = QFileDialog.getOpenFileName(self, "Private key", str(Path.home() / ".ssh"))
        if chosen:
            field.setText(chosen)

    def _set_row(self, field: QWidget, visible: bool) -> None:
        self.form.setRowVisible(field, visible)

    def _update_rows(self) -> None:
        """Show only the fields the chosen login needs, and say what the password field is for."""
        if self.kind == "ray" and self.form.indexOf(self.network_interface) >= 0:
            self._set_row(self.network_interface, False)  # Ray places each run on one node of its own choosing
        if self.kind in ("local", "ray"):
            return
        guest = self.kind == "vsphere" and self.launch.currentData() == "guest_ops"
        auth = self.auth.currentData()
        if self.kind == "vsphere":
            for field in (self.user_row, self.auth):
                self._set_row(field, not guest)
            self._set_row(self.guest_user, guest)
        self._set_row(self.key_file.parentWidget(), not guest and auth == "key")
        if guest:
            label, visible = "Guest OS password:", True
        elif auth == "agent":
            label, visible = "Password:", False
        else:
            label, visible = ("Key passphrase:" if auth == "key" else "Password:"), True
            if self.kind == "vsphere" and not self.vm_ip:
                visible = False  # the keyring account names the guest IP, unknown here
        self.password_label.setText(label)
        self._set_row(self.password, visible)
        saved = self.original is not None
        self.password.setPlaceholderText("leave empty to keep the saved one" if saved else
                                         ("only if the key has one" if auth == "key" and not guest else
                                          "saved in the system keyring, never in files"))

    # -- results ---------------------------------------------------------------------------
    def target(self) -> Target:
        """The target as entered; raises TargetConfigError with what is wrong."""
        name = self.name.text().strip()
        if not name:
            raise TargetConfigError("the target has no name", "enter a short name, e.g. gpu-box")
        common = dict(name=name, python=self.python.text().strip(), mappings=self.mappings.mappings(),
                      max_jobs=self.max_jobs.value())
        if self.kind == "local":
            return LocalTarget(**common)
        if self.kind == "ray":
            common["python"] = common["python"] or "python3"
            return RayTarget(**common, **self.ray.values())
        common["network_interface"] = self.network_interface.text().strip()
        if self.kind == "ssh":
            common["python"] = common["python"] or "python3"
            return SshTarget(host=self.host.text().strip(), user=self.user.text().strip(), port=self.port.value(),
                             auth=self.auth.currentData(), key_file=self.key_file.text().strip(), **common)
        common["python"] = common["python"] or "python3"
        if not self.vcenter.currentText():
            raise TargetConfigError("no vCenter is chosen", "add the vCenter on the vSphere tab first")
        if not self.vm.text().strip():
            raise TargetConfigError("no VM is named", "pick the VM in the vSphere inventory")
        return VSphereTarget(vcenter=self.vcenter.currentText(), vm=self.vm.text().strip(),
                             launch=self.launch.currentData(), ssh_user=self.user.text().strip(),
                             ssh_port=self.port.value(), ssh_auth=self.auth.currentData(),
                             ssh_key_file=self.key_file.text().strip(), guest_user=self.guest_user.text().strip(),
                             **common)

    def secrets(self, target: Target) -> list[tuple[str, str]]:
        """(keyring account, password) pairs to save for ``target``: only fields the user typed in."""
        password = self.password.text()
        if not password or not self.form.isRowVisible(self.password):
            return []
        if isinstance(target, SshTarget):
            return [(target.secret_account(), password)]
        if isinstance(target, VSphereTarget):
            if target.launch == "guest_ops":
                return [(target.guest_secret_account(), password)]
            return [(target.ssh_target(self.vm_ip).secret_account(), password)]
        return []

    def accept(self) -> None:
        """Close only when the target is valid; otherwise say what to fix."""
        try:
            self.result_target = self.target()
        except TargetConfigError as exc:
            self.error.setText(f"{exc.message}: {exc.hint}" if exc.hint else exc.message)
            self.error.show()
            return
        super().accept()
