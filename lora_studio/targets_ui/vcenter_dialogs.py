"""Adding a vCenter, and the explicit "trust this certificate?" step (DESIGN.md section 10).

The certificate dialog shows what the user needs to compare with the vCenter appliance
console: the SHA-256 thumbprint first, then subject, issuer and expiry. Trusting is a
button the user presses; nothing is pinned on the way past.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QVBoxLayout,
                               QWidget)

from ..boxes import port_box
from ..targets import CertificateInfo, TargetConfigError, VCenter
from ..targets.vsphere import normalize_thumbprint


class VCenterDialog(QDialog):
    """Name, address, user and password (for the keyring) of a vCenter or ESXi host."""

    def __init__(self, vcenter: VCenter | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.original = vcenter
        self.setWindowTitle("Edit vCenter" if vcenter else "Add vCenter")
        self.setMinimumWidth(460)
        self.name = QLineEdit(vcenter.name if vcenter else "", self)
        self.name.setPlaceholderText("e.g. lab")
        self.host = QLineEdit(vcenter.host if vcenter else "", self)
        self.host.setPlaceholderText("vcenter.example.com")
        self.port = port_box(self, vcenter.port if vcenter else 443)
        self.user = QLineEdit(vcenter.user if vcenter else "", self)
        self.user.setPlaceholderText("administrator@vsphere.local")
        self.password = QLineEdit(self)
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("leave empty to keep the saved one" if vcenter else
                                         "saved in the system keyring, never in files")
        self.error = QLabel(self)
        self.error.setStyleSheet("color: #dc2626;")
        self.error.setWordWrap(True)
        self.error.hide()
        form = QFormLayout()
        for label, field in (("Name:", self.name), ("Address:", self.host), ("Port:", self.port), ("User:", self.user),
                             ("Password:", self.password)):
            form.addRow(label, field)
        note = QLabel("The first connection shows the server's certificate; you decide whether to trust it.", self)
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(self.error)
        layout.addWidget(buttons)

    def vcenter(self) -> VCenter:
        """The vCenter as entered (keeping an existing pin when the address is unchanged)."""
        name = self.name.text().strip() or self.host.text().strip()
        host, port = self.host.text().strip(), self.port.value()
        old = self.original
        pin = old.thumbprint if old and (old.host, old.port) == (host, port) else ""
        return VCenter(name=name, host=host, user=self.user.text().strip(), port=port, thumbprint=pin)

    def accept(self) -> None:
        """Close only with a usable address and user."""
        try:
            self.result_vcenter = self.vcenter()
        except TargetConfigError as exc:
            self.error.setText(f"{exc.message}: {exc.hint}")
            self.error.show()
            return
        super().accept()


class CertificateDialog(QDialog):
    """A vCenter's certificate with a Trust button (pins the thumbprint) and Cancel."""

    def __init__(self, vcenter: VCenter, info: CertificateInfo, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vcenter, self.info = vcenter, info
        self.setWindowTitle(f"Certificate of {vcenter.host}")
        self.setMinimumWidth(620)
        pinned = normalize_thumbprint(vcenter.thumbprint) if vcenter.thumbprint else ""
        if pinned and pinned == info.thumbprint:
            head, color = "This certificate is the one you trusted before.", "#15803d"
        elif pinned:
            head, color = ("The certificate has CHANGED since you trusted it: connections are refused. Trust the "
                           "new one only if the vCenter admin confirms this thumbprint (a renewed certificate)."), "#dc2626"
        elif info.system_trusted:
            head, color = "This computer's certificate store trusts this certificate: nothing to pin.", "#15803d"
        else:
            head, color = (f"This computer does not trust this certificate ({info.reason}). Compare the thumbprint "
                           "with the one on the vCenter appliance console, then trust it."), "#a16207"
        self.headline = QLabel(f"<b style='color:{color}'>{html.escape(head)}</b>", self)
        self.headline.setWordWrap(True)
        # 32 pairs do not fit one line and have no spaces to wrap at: two lines of 16, as vCenter groups them.
        half = len(info.thumbprint) // 2 + 1
        self.thumbprint = QLabel(f"<tt><b>{info.thumbprint[:half]}<br>{info.thumbprint[half:]}</b></tt>", self)
        self.thumbprint.setObjectName("thumbprint")
        self.thumbprint.setWordWrap(True)
        self.thumbprint.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form = QFormLayout()
        form.addRow("Thumbprint (SHA-256):", self.thumbprint)
        for label, value in (("Subject:", info.subject), ("Issuer:", info.issuer), ("Expires:", info.not_after),
                             ("Server:", f"{vcenter.host}:{vcenter.port}")):
            field = QLabel(value or "?", self)
            field.setWordWrap(True)
            field.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            form.addRow(label, field)
        buttons = QDialogButtonBox(self)
        self.can_trust = not info.system_trusted and pinned != info.thumbprint
        if self.can_trust:
            self.trust_button = buttons.addButton("Trust this certificate", QDialogButtonBox.ButtonRole.AcceptRole)
            buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        else:
            buttons.addButton(QDialogButtonBox.StandardButton.Close)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.headline)
        layout.addLayout(form)
        layout.addWidget(buttons)
