"""The fields of the New VM dialog, filled from the vCenter's inventory (:class:`NewVmChoices`).

What the lists offer follows the choices above them: the datastores, networks, resource pools
and GPUs are those of the chosen host (or cluster), a GPU list only for a host (a GPU is one
host's), and the disk size only for a full clone (a linked clone's disk is a delta). A GPU
another VM holds is listed, greyed out, with the VM's name, so that it is clear why it is not
offered. :meth:`NewVmForm.request` turns the fields into a :class:`NewVm`; the values are
checked again by :mod:`lora_studio.vsphere.newvm` when the VM is made.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout,
                               QLabel, QLineEdit, QPushButton, QRadioButton, QSizePolicy, QSpinBox, QWidget)

from ..vsphere import BadInput, GuestSetup, NewVm
from ..vsphere.choices import NewVmChoices, Placement, Source
from ..vsphere.newvm import MAX_CPUS, MAX_DISK_GB, MAX_MEMORY_GB, check

INVALID_STYLE = "border: 1px solid #dc2626;"


def _combo(parent: QWidget, name: str) -> QComboBox:
    box = QComboBox(parent)
    box.setObjectName(name)
    box.setMinimumContentsLength(22)
    box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    box.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)  # long GPU and network names fit
    return box


def _spin(parent: QWidget, top: int, suffix: str) -> QSpinBox:
    box = QSpinBox(parent)
    box.setRange(0, top)
    box.setSuffix(suffix)
    box.setMinimumWidth(150)
    return box


def _fill(box: QComboBox, items: list[tuple[str, str]], keep: bool = True) -> None:
    """Replace ``box``'s (text, data) items, keeping the current choice when it is still there."""
    current = box.currentData()
    box.blockSignals(True)
    box.clear()
    for text, data in items:
        box.addItem(text, data)
    index = box.findData(current) if keep else -1
    box.setCurrentIndex(index if index >= 0 else 0)
    box.blockSignals(False)


def placement_label(place: Placement) -> str:
    """How the "Place on" list names a host or cluster."""
    if place.is_cluster:
        return f"{place.name}  (cluster: DRS picks the host)"
    return f"    {place.name}  (host in {place.cluster})" if place.cluster else f"{place.name}  (standalone host)"


class NewVmForm(QWidget):
    """Source, name, placement, storage, size, network, GPU, guest setup and power of a new VM."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.choices = NewVmChoices((), (), ())
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        self.form = form

        self.from_template = QRadioButton("Template", self)
        self.from_snapshot = QRadioButton("Linked clone of a VM at a snapshot", self)
        self.from_template.setChecked(True)
        group = QButtonGroup(self)
        for button in (self.from_template, self.from_snapshot):
            group.addButton(button)
            button.toggled.connect(lambda _: self._source_changed())
        self.template = _combo(self, "templateBox")
        self.clone_vm = _combo(self, "cloneVmBox")
        self.snapshot = _combo(self, "snapshotBox")
        self.template.currentIndexChanged.connect(lambda _: self._source_changed())
        self.clone_vm.currentIndexChanged.connect(lambda _: self._source_changed())
        source_row = QHBoxLayout()
        source_row.addWidget(self.from_template)
        source_row.addWidget(self.template, 1)
        clone_row = QHBoxLayout()
        clone_row.addWidget(self.from_snapshot)
        clone_row.addWidget(self.clone_vm, 1)
        clone_row.addWidget(QLabel("at", self))
        clone_row.addWidget(self.snapshot, 1)
        form.addRow("Clone from:", source_row)
        form.addRow("", clone_row)

        self.name = QLineEdit(self)
        self.name.setObjectName("vmName")
        self.name.setPlaceholderText("e.g. lora-trainer-01")
        form.addRow("Name:", self.name)
        self.place = _combo(self, "placeBox")
        self.place.currentIndexChanged.connect(lambda _: self._place_changed())
        self.pool = _combo(self, "poolBox")
        place_row = QHBoxLayout()
        place_row.addWidget(self.place, 2)
        place_row.addWidget(QLabel("Resource pool:", self))
        place_row.addWidget(self.pool, 1)
        form.addRow("Place on:", place_row)
        self.datastore = _combo(self, "datastoreBox")
        self.policy = _combo(self, "policyBox")
        storage_row = QHBoxLayout()
        storage_row.addWidget(self.datastore, 1)
        storage_row.addWidget(QLabel("Storage policy:", self))
        storage_row.addWidget(self.policy, 1)
        form.addRow("Datastore:", storage_row)

        self.cpus = _spin(self, MAX_CPUS, " CPUs")
        self.memory = _spin(self, MAX_MEMORY_GB, " GB")
        self.disk = _spin(self, MAX_DISK_GB, " GB")
        size_row = QHBoxLayout()
        for label, box in (("", self.cpus), ("Memory:", self.memory), ("Disk:", self.disk)):
            if label:
                size_row.addWidget(QLabel(label, self))
            size_row.addWidget(box)
        size_row.addStretch(1)
        form.addRow("Size:", size_row)
        self.network = _combo(self, "networkBox")
        form.addRow("Network:", self.network)
        self.gpu = _combo(self, "gpuBox")
        self.gpu.setToolTip("A free passthrough GPU of the host (the VM's memory is then reserved in full), "
                            "or an NVIDIA vGPU profile")
        form.addRow("GPU:", self.gpu)

        self.guest = QGroupBox("Set up the guest with cloud-init (guestinfo)", self)
        self.guest.setCheckable(True)
        self.guest.setChecked(False)
        guest_form = QFormLayout(self.guest)
        self.share = QLineEdit(self.guest)
        self.share.setPlaceholderText("nas:/export/lora (NFS) or //nas/lora (SMB)")
        self.share_kind = QComboBox(self.guest)
        self.share_kind.addItems(["nfs", "smb"])
        self.mount_point = QLineEdit("/data/lora", self.guest)
        share_row = QHBoxLayout()
        share_row.addWidget(self.share, 2)
        share_row.addWidget(self.share_kind)
        share_row.addWidget(QLabel("mounted at", self.guest))
        share_row.addWidget(self.mount_point, 1)
        guest_form.addRow("Share:", share_row)
        self.wheel = QLineEdit(self.guest)
        self.wheel.setPlaceholderText("/data/lora/wheels/lora_studio-….whl (as the VM sees it): installs the trainer")
        guest_form.addRow("Trainer wheel:", self.wheel)
        self.ssh_user = QLineEdit(self.guest)
        self.ssh_user.setPlaceholderText("trainer")
        self.key_file = QLineEdit(self.guest)
        self.key_file.setPlaceholderText("~/.ssh/id_ed25519.pub")
        browse = QPushButton("Browse…", self.guest)
        browse.clicked.connect(self._pick_key)
        ssh_row = QHBoxLayout()
        ssh_row.addWidget(self.ssh_user, 1)
        ssh_row.addWidget(QLabel("public key:", self.guest))
        ssh_row.addWidget(self.key_file, 2)
        ssh_row.addWidget(browse)
        guest_form.addRow("SSH user:", ssh_row)
        form.addRow(self.guest)

        self.power_on = QCheckBox("Power on, then wait for VMware Tools and an IP address for up to", self)
        self.power_on.setChecked(True)
        self.wait_s = _spin(self, 3600, " s")
        self.wait_s.setValue(600)
        self.power_on.toggled.connect(self.wait_s.setEnabled)
        power_row = QHBoxLayout()
        power_row.addWidget(self.power_on)
        power_row.addWidget(self.wait_s)
        power_row.addStretch(1)
        form.addRow("Power:", power_row)

        # Where each option of a refusal points (BadInput.option, as the CLI spells it).
        self.fields: dict[str, tuple[str, QWidget]] = {
            "--name": ("Name", self.name), "--template": ("Template", self.template),
            "--snapshot": ("Snapshot", self.snapshot), "--host": ("Place on", self.place),
            "--cluster": ("Place on", self.place), "--resource-pool": ("Resource pool", self.pool),
            "--datastore": ("Datastore", self.datastore), "--policy": ("Storage policy", self.policy),
            "--cpus": ("CPUs", self.cpus), "--memory-gb": ("Memory", self.memory), "--disk-gb": ("Disk", self.disk),
            "--network": ("Network", self.network), "--gpu": ("GPU", self.gpu), "--share": ("Share", self.share),
            "--share-kind": ("Share", self.share_kind), "--mount-point": ("Mounted at", self.mount_point),
            "--wheel": ("Trainer wheel", self.wheel), "--ssh-user": ("SSH user", self.ssh_user),
            "--ssh-key": ("SSH user", self.ssh_user), "--ssh-key-file": ("Public key", self.key_file),
            "--wait-ip": ("Power", self.wait_s),
        }
        for widget in (self.name, self.share, self.mount_point, self.wheel, self.ssh_user, self.key_file):
            widget.textChanged.connect(lambda _: self.changed.emit())

    # -- filling ------------------------------------------------------------------------------
    def set_choices(self, choices: NewVmChoices) -> None:
        """Fill the lists from the vCenter's inventory."""
        self.choices = choices
        _fill(self.template, [(s.name, s.name) for s in choices.sources if s.template])
        _fill(self.clone_vm, [(s.name, s.name) for s in choices.sources if s.snapshots])
        if not any(s.template for s in choices.sources) and any(s.snapshots for s in choices.sources):
            self.from_snapshot.setChecked(True)
        self.from_snapshot.setEnabled(self.clone_vm.count() > 0)
        self.clone_vm.setPlaceholderText("no VM has a snapshot yet")
        self.from_template.setEnabled(self.template.count() > 0)
        _fill(self.place, [(placement_label(p), p.name) for p in choices.placements])
        _fill(self.policy, [("Datastore default", "")] + [(name, name) for name in choices.policies])
        self.policy.setEnabled(bool(choices.policies))
        self.policy.setToolTip(choices.policy_note or "Applied to the VM's home folder and every disk")
        self._source_changed(place_on_source=True)

    def source(self) -> Source | None:
        """The template, or the VM whose snapshot is cloned."""
        box = self.template if self.from_template.isChecked() else self.clone_vm
        return self.choices.source(box.currentData() or "")

    def placement(self) -> Placement | None:
        """The chosen host or cluster."""
        return self.choices.placement(self.place.currentData() or "")

    def _source_changed(self, place_on_source: bool = False) -> None:
        linked = self.from_snapshot.isChecked()
        self.template.setEnabled(not linked)
        self.clone_vm.setEnabled(linked)
        self.snapshot.setEnabled(linked)
        source = self.source()
        _fill(self.snapshot, [(name, name) for name in (source.snapshots if source and linked else ())])
        if source is not None and place_on_source and self.place.findData(source.host) >= 0:
            self.place.setCurrentIndex(self.place.findData(source.host))  # where the template is: nothing to move
        self.cpus.setSpecialValueText(f"as template ({source.cpus})" if source else "as template")
        self.memory.setSpecialValueText(f"as template ({source.memory_mb / 1024:g} GB)" if source else "as template")
        self.disk.setSpecialValueText(f"as template ({source.disk_gb:g} GB)" if source else "as template")
        if linked:
            self.disk.setValue(0)
        self.disk.setEnabled(not linked)
        self.disk.setToolTip("A linked clone's disk is a delta of the snapshot's and cannot grow" if linked else
                             "Grow the first disk to this size (it cannot shrink below the template's)")
        self._place_changed()

    def _place_changed(self) -> None:
        place = self.placement()
        same = "Same as the template"
        _fill(self.datastore, [(same, "")] + [(name, name) for name in (place.datastores if place else ())])
        _fill(self.network, [(same, "")] + [(name, name) for name in (place.networks if place else ())])
        pools = place.pools if place else ()
        _fill(self.pool, [(f"{pools[0]} (root)" if pools else "root pool", "")] + [(n, n) for n in pools[1:]])
        self._fill_gpus(place)
        self.changed.emit()

    def _fill_gpus(self, place: Placement | None) -> None:
        if place is None or place.gpus is None:
            _fill(self.gpu, [("No GPU (choose a host to give the VM one)" if place else "No GPU", "")])
            self.gpu.setEnabled(False)
            return
        gpus = place.gpus
        items = [("No GPU", "")]
        items += [(f"{g.name} ({g.id})" + ("" if g.free else f" — used by {', '.join(g.used_by)}"), g.id)
                  for g in gpus.passthrough]
        items += [(f"vGPU {profile}", f"vgpu:{profile}") for profile in gpus.vgpu_profiles]
        _fill(self.gpu, items)
        model = self.gpu.model()
        if isinstance(model, QStandardItemModel):
            for row, gpu in enumerate(gpus.passthrough, start=1):
                model.item(row).setEnabled(gpu.free)  # listed so that it is clear who has it; not offered
        current = self.gpu.currentIndex()
        if 0 < current <= len(gpus.passthrough) and not gpus.passthrough[current - 1].free:
            self.gpu.setCurrentIndex(0)  # the GPU chosen before is another VM's now
        self.gpu.setEnabled(True)

    def _pick_key(self) -> None:
        chosen, _ = QFileDialog.getOpenFileName(self, "SSH public key", self.key_file.text() or "~/.ssh",
                                                "Public keys (*.pub)")
        if chosen:
            self.key_file.setText(chosen)

    # -- reading -------------------------------------------------------------------------------
    def request(self) -> tuple[NewVm, str]:
        """The VM as entered and the public key file to authorize; raises :class:`BadInput` for what
        is wrong before any vCenter is asked (names, numbers, the guest setup)."""
        source, place = self.source(), self.placement()
        if source is None:
            raise BadInput("--template", "no template is chosen", "make a template in vSphere Client first")
        linked = self.from_snapshot.isChecked()
        guest = GuestSetup()
        key_file = ""
        if self.guest.isChecked():
            key_file = self.key_file.text().strip()
            guest = GuestSetup(share=self.share.text().strip(), share_kind=self.share_kind.currentText(),
                               mount_point=self.mount_point.text().strip(), wheel=self.wheel.text().strip(),
                               ssh_user=self.ssh_user.text().strip(), hostname=self.name.text().strip())
            if key_file and not guest.ssh_user:
                raise BadInput("--ssh-key", "a public key needs a user", "enter the SSH user the key logs in as")
        req = NewVm(name=self.name.text().strip(), template=source.name,
                    snapshot=(self.snapshot.currentData() or "") if linked else "",
                    host="" if place is None or place.is_cluster else place.name,
                    cluster=place.name if place is not None and place.is_cluster else "",
                    resource_pool=self.pool.currentData() or "", datastore=self.datastore.currentData() or "",
                    policy=self.policy.currentData() or "", cpus=self.cpus.value(), memory_gb=float(self.memory.value()),
                    disk_gb=0.0 if linked else float(self.disk.value()), network=self.network.currentData() or "",
                    gpu=self.gpu.currentData() or "", guest=guest, power_on=self.power_on.isChecked(),
                    wait_ip_s=float(self.wait_s.value()) if self.power_on.isChecked() else 0.0)
        if linked and not req.snapshot:
            raise BadInput("--snapshot", f"{source.name} has no snapshot chosen", "choose the snapshot to clone")
        check(req)
        return req, key_file

    # -- refusals ------------------------------------------------------------------------------
    def explain(self, error: BadInput) -> str:
        """The refusal on one line, with the field's label where the CLI would name its option."""
        label, _ = self.fields.get(error.option, (error.option, None))
        text = error.explained()
        return f"{label}:{text[len(error.option) + 1:]}" if text.startswith(f"{error.option}:") else text

    def mark(self, error: BadInput | None) -> None:
        """Outline the field ``error`` names (and only it); None clears every outline."""
        for _, widget in self.fields.values():
            widget.setStyleSheet("")
        if error is not None and error.option in self.fields:
            widget = self.fields[error.option][1]
            widget.setStyleSheet(INVALID_STYLE)
            widget.setFocus()
