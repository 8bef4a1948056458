"""The New VM dialog of the vSphere tab: a trainer VM cloned from a template (or a linked clone
of a snapshot), made in a worker with the vCenter task's progress shown and a working Cancel.

It reads the inventory for its lists first, then runs :func:`.vsphere_jobs.make_vm`: clone,
configure, power on, wait for VMware Tools and an IP. A refusal (a name in use, a GPU another
VM took meanwhile) comes back as one line under the fields, with the field outlined; nothing
is made then. Once the VM is up, "Add as a target…" opens the Targets tab's dialog for it,
with the share's mount point as the path mapping's target side.
"""

from __future__ import annotations

import html
from functools import partial
from typing import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from trainer.wording import plural

from ..targets import TargetContext, VCenter
from ..vsphere import BadInput, Cancelled, MadeVm
from ..vsphere.choices import NewVmChoices
from ..workers.tasks import CancelToken, TaskRunner
from .jobs import Captured, capture
from .new_vm_form import NewVmForm
from .target_dialog import Suggested
from .vsphere_jobs import load_choices, make_vm, vm_row

ERROR_COLOR, OK_COLOR = "#dc2626", "#15803d"


class _Steps(QObject):
    """Carries a worker's progress to the UI thread (made on the UI thread, so emits are queued)."""

    step = Signal(str, object)   # what is being done, percent (None: unknown)


class NewVmDialog(QDialog):
    """Make a trainer VM on ``vcenter``; ``targetWanted`` asks the Targets tab for a target on it."""

    choicesLoaded = Signal()
    workDone = Signal(str)              # made | refused | failed | cancelled (tests wait on it)
    targetWanted = Signal(object, object)   # VmRow, Suggested

    def __init__(self, vcenter: VCenter, context: Callable[[], TargetContext], runner: TaskRunner,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vcenter, self.context, self.runner = vcenter, context, runner
        self.made: MadeVm | None = None
        self.token: CancelToken | None = None
        self.steps = _Steps(self)
        self.steps.step.connect(self._step)
        self.setWindowTitle(f"New trainer VM on {vcenter.name}")
        self.setMinimumWidth(860)

        self.form = NewVmForm(self)
        self.form.setEnabled(False)
        self.form.changed.connect(lambda: self.form.mark(None))
        self.status = QLabel(f"Reading the inventory of {html.escape(vcenter.name)}…", self)
        self.status.setObjectName("newVmStatus")
        self.status.setWordWrap(True)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 100)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.buttons = QDialogButtonBox(self)
        self.create_button = self.buttons.addButton("Create VM", QDialogButtonBox.ButtonRole.AcceptRole)
        self.create_button.setObjectName("createVmButton")
        self.create_button.setEnabled(False)
        self.create_button.clicked.connect(self.create)
        self.target_button = QPushButton("Add as a target…", self)
        self.target_button.setObjectName("addTargetButton")
        self.target_button.clicked.connect(self._want_target)
        self.buttons.addButton(self.target_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.target_button.hide()   # after addButton, which shows it: offered once the VM is up
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.cancel_button.clicked.connect(self.cancel)
        layout = QVBoxLayout(self)
        layout.addWidget(self.form)
        layout.addWidget(self.status)
        layout.addWidget(self.progress)
        layout.addWidget(self.buttons)
        self.runner.start(capture, load_choices, vcenter, context(), on_done=self._loaded, owner=self,
                          on_error=lambda message: self._say(f"The inventory could not be read: {message}", ERROR_COLOR))

    # -- loading -------------------------------------------------------------------------------
    def _loaded(self, result: Captured) -> None:
        if result.error is not None:
            self._say(f"The inventory could not be read: {result.error}", ERROR_COLOR)
            return
        choices: NewVmChoices = result.value
        self.form.set_choices(choices)
        self.form.setEnabled(True)
        self.create_button.setEnabled(bool(choices.sources))
        templates = sum(s.template for s in choices.sources)
        self._say(f"{plural(templates, 'template')}, {len(choices.placements)} hosts and clusters on "
                  f"{self.vcenter.name}. "
                  "Fields left as they are keep the template's values." if choices.sources else
                  "This vCenter has no template (or VM with a snapshot) to clone: make one in vSphere Client first.")
        self.choicesLoaded.emit()

    # -- making --------------------------------------------------------------------------------
    def create(self) -> None:
        """Check the fields, then make the VM in a worker."""
        if self.token is not None:
            return
        self.form.mark(None)
        try:
            req, key_file = self.form.request()
        except BadInput as exc:
            self._refused(exc)
            return
        self.token = token = CancelToken()
        self.form.setEnabled(False)
        self.create_button.setEnabled(False)
        self.progress.setRange(0, 0)
        self.progress.show()
        self._say(f"Making {html.escape(req.name)}…")
        job = partial(make_vm, progress=self.steps.step.emit, cancelled=lambda: token.cancelled)
        self.runner.start(capture, job, self.vcenter, self.context(), req, key_file, on_done=self._finished,
                          on_error=lambda message: self._failed(message), owner=self)

    def _step(self, step: str, percent: object) -> None:
        if self.token is None or self.token.cancelled:
            return  # "Cancelling…" stays until the worker reports back
        self._say(html.escape(step[:1].upper() + step[1:]) + "…")
        if isinstance(percent, int):
            self.progress.setRange(0, 100)
            self.progress.setValue(percent)
        else:
            self.progress.setRange(0, 0)  # vCenter gives no percent for this step: busy

    def cancel(self) -> None:
        """Cancel the running vCenter task (what it made is removed again), or close when idle."""
        if self.token is None:
            self.reject()
            return
        self.token.cancel()
        self.cancel_button.setEnabled(False)
        self._say("Cancelling… (the vCenter task is being cancelled; a half-made VM is removed)")

    def _finished(self, result: Captured) -> None:
        self.token = None
        self.progress.hide()
        self.cancel_button.setEnabled(True)
        error = result.error
        if isinstance(error, BadInput):
            self._refused(error)
        elif isinstance(error, Cancelled):
            self._editable()
            self._say(f"Cancelled: {html.escape(error.explained())}.")
            self.workDone.emit("cancelled")
        elif error is not None:
            self._failed(error.explained())
        else:
            self._made(result.value)

    def _refused(self, error: BadInput) -> None:
        self._editable()
        self.form.mark(error)
        self._say(html.escape(self.form.explain(error)), ERROR_COLOR)
        self.workDone.emit("refused")

    def _failed(self, message: str) -> None:
        self.token = None
        self.progress.hide()
        self._editable()
        self._say(f"Not made: {html.escape(message)}", ERROR_COLOR)
        self.workDone.emit("failed")

    def _editable(self) -> None:
        self.form.setEnabled(True)
        self.create_button.setEnabled(True)
        self.cancel_button.setEnabled(True)

    def _made(self, made: MadeVm) -> None:
        self.made = made
        where = f"on at {made.ip}" if made.ip else made.power_state.replace("powered", "powered ").lower()
        gpus = ", ".join(made.gpus) or "no GPU"
        self._say(f"✓ <b>{html.escape(made.name)}</b> is {html.escape(where)} on {html.escape(made.host)}: "
                  f"{made.cpus} CPUs, {made.memory_mb / 1024:g} GB memory, disk {made.disk_gb:g} GB on "
                  f"{html.escape(', '.join(made.datastores))}, network {html.escape(made.network or '-')}, "
                  f"{html.escape(gpus)}.", OK_COLOR)
        self.create_button.hide()
        self.target_button.show()
        self.target_button.setDefault(True)
        self.cancel_button.setText("Close")
        self.workDone.emit("made")

    def _want_target(self) -> None:
        if self.made is None:
            return
        guest = self.form.guest.isChecked()
        mount = self.form.mount_point.text().strip() if guest and self.form.share.text().strip() else ""
        suggested = Suggested(ssh_user=self.form.ssh_user.text().strip() if guest else "",
                              mappings=(("", mount),) if mount else ())
        self.targetWanted.emit(vm_row(self.made), suggested)
        self.accept()

    def _say(self, text: str, color: str = "") -> None:
        self.status.setText(f"<span style='color:{color}'>{text}</span>" if color else text)

    def reject(self) -> None:
        """Closing while a VM is being made cancels it first (nothing is left half-made)."""
        if self.token is not None:
            self.token.cancel()
        super().reject()
