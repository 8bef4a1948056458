"""The trust prompts shared by both tabs: a new SSH host key, a vCenter certificate, a refusal.

Trusting is always the user's explicit action (DESIGN.md section 10): a first-use prompt
shows the fingerprint to compare and pins it only on "Trust"; a key or certificate that
changed is refused with the reason and what to do, never offered as a one-click trust.
Dialogs open non-modally (``open()``) so the UI thread never waits on them.
"""

from __future__ import annotations

import html
from typing import Callable

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from ..targets import TargetError, UntrustedHostKey, trust_ssh_host, vcenter_certificate
from ..workers.tasks import TaskRunner
from .jobs import Captured, capture
from .store import TargetStore
from .vcenter_dialogs import CertificateDialog


class TrustPrompts(QObject):
    """Shows the prompts; ``prompt`` is the one open now (tests press its buttons)."""

    def __init__(self, store: TargetStore, runner: TaskRunner, parent: QWidget) -> None:
        super().__init__(parent)
        self.store, self.runner, self.widget = store, runner, parent
        self.prompt: QMessageBox | CertificateDialog | None = None

    def _show(self, prompt: QMessageBox | CertificateDialog) -> None:
        self.prompt = prompt
        prompt.finished.connect(lambda _=0: self._closed(prompt))
        prompt.open()

    def _closed(self, prompt) -> None:
        if self.prompt is prompt:
            self.prompt = None
        prompt.deleteLater()

    def ask_host_key(self, unknown: UntrustedHostKey, then: Callable[[], None]) -> None:
        """First contact with an SSH host: show its fingerprint; pin it and call ``then`` on Trust."""
        box = QMessageBox(QMessageBox.Icon.Question, "New SSH host",
                          f"<p>This is the first connection to <b>{html.escape(unknown.host)}:{unknown.port}</b>.</p>"
                          f"<p>Its {html.escape(unknown.key_type)} host key fingerprint is<br>"
                          f"<pre><b>{html.escape(unknown.fingerprint)}</b></pre>"
                          "<p>Compare it with the one the host's admin gives you, from</p>"
                          "<pre>ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub</pre>"
                          "<p>on the host. Trust it only if they match.</p>",
                          QMessageBox.StandardButton.Cancel, self.widget)
        box.setObjectName("hostKeyPrompt")
        box.setTextFormat(Qt.TextFormat.RichText)
        trust = box.addButton("Trust this host", QMessageBox.ButtonRole.AcceptRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)

        def answered(button) -> None:
            if button is not trust:
                return
            try:
                trust_ssh_host(self.store.context(), unknown)
            except (TargetError, OSError) as exc:
                self.refused("Host key not saved", str(exc))
                return
            then()
        # QMessageBox reports custom buttons through buttonClicked, not accepted().
        box.buttonClicked.connect(answered)
        self._show(box)

    def ask_certificate(self, vcenter_name: str, then: Callable[[], None] | None = None,
                        on_error: Callable[[str], None] | None = None) -> None:
        """Fetch the vCenter's certificate in a worker, show it, and pin it when the user trusts it."""
        try:
            vcenter = self.store.settings.vcenter(vcenter_name)
        except TargetError as exc:
            self.refused("No such vCenter", exc.message)
            return

        def fetched(result: Captured) -> None:
            if result.error is not None:
                (on_error or (lambda m: self.refused("Certificate not read", m)))(
                    f"{result.error.message} ({result.error.hint})")
                return
            dialog = CertificateDialog(vcenter, result.value, self.widget)
            dialog.setObjectName("certificatePrompt")

            def trusted() -> None:
                self.store.pin(vcenter.name, result.value.thumbprint)
                if then is not None:
                    then()
            if dialog.can_trust:
                dialog.accepted.connect(trusted)
            elif then is not None:  # nothing to decide (already trusted): carry on when it is closed
                dialog.finished.connect(lambda _: then())
            self._show(dialog)

        self.runner.start(capture, vcenter_certificate, vcenter, on_done=fetched,
                          on_error=on_error or (lambda m: self.refused("Certificate not read", m)))

    def refused(self, title: str, message: str, hint: str = "") -> None:
        """A connection refused (changed key or certificate) or another failure the user must read."""
        box = QMessageBox(QMessageBox.Icon.Critical, title, message, QMessageBox.StandardButton.Ok, self.widget)
        box.setObjectName("refusal")
        if hint:
            box.setInformativeText(hint)
        self._show(box)
