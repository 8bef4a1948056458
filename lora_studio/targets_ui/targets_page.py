"""The Targets tab: the saved targets, their dialogs, and "Test / preflight" with its checks."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QMenu,
                               QMessageBox, QPushButton, QSplitter, QVBoxLayout, QWidget)

from ..boxes import column
from ..targets import (LocalTarget, PreflightReport, SshTarget, Target, TargetError, UntrustedCertificate,
                       UntrustedHostKey, VmRow, forget_password, install_trainer, store_password)
from ..targets.model import RayTarget
from ..workers.tasks import TaskRunner
from .jobs import Captured, capture, check_target, refusal
from .models import ROW_ROLE, ChecksModel, TargetsModel
from .tables import make_table
from .store import TargetStore, gpu_notes_file
from .target_dialog import Suggested, TargetDialog
from .trust import TrustPrompts

CONNECTIVITY = "Connectivity only (no config)"


def secret_accounts(target: Target) -> list[str]:
    """Keyring accounts a target may have saved (forgotten with it)."""
    if isinstance(target, SshTarget):
        return [target.secret_account()]
    if isinstance(target, (LocalTarget, RayTarget)):
        return []
    return [target.guest_secret_account()] if target.guest_user else []


class TargetsPage(QWidget):
    """Targets list with Add/Edit/Remove, and a preflight on the selected one."""

    checkFinished = Signal(object)   # the PreflightReport shown (tests wait on it)

    def __init__(self, store: TargetStore, runner: TaskRunner, trust: TrustPrompts,
                 workspace: Callable[[], Path | None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store, self.runner, self.trust, self.workspace = store, runner, trust, workspace
        self.dialog: TargetDialog | None = None
        self.report: PreflightReport | None = None
        self.checking = False

        self.model = TargetsModel(self)
        self.table = make_table(self, self.model, "targetsTable")
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.doubleClicked.connect(lambda _: self.edit_selected())
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())
        add = QPushButton("Add", self)
        menu = QMenu(add)
        menu.addAction("This computer…", lambda: self.add_target("local"))
        menu.addAction("SSH host…", lambda: self.add_target("ssh"))
        menu.addAction("vSphere VM…", lambda: self.add_target("vsphere"))
        menu.addAction("Ray cluster…", lambda: self.add_target("ray"))
        add.setMenu(menu)
        self.edit_button = QPushButton("Edit…", self)
        self.edit_button.clicked.connect(self.edit_selected)
        self.remove_button = QPushButton("Remove", self)
        self.remove_button.clicked.connect(self.remove_selected)
        list_buttons = QHBoxLayout()
        for button in (add, self.edit_button, self.remove_button):
            list_buttons.addWidget(button)
        list_buttons.addStretch(1)
        top = column(self, (self.table, 1), list_buttons)

        # -- preflight ------------------------------------------------------------------------
        self.config_box = QComboBox(self)
        self.config_box.setObjectName("preflightConfig")
        self.config_box.setMinimumContentsLength(24)
        self.config_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.config_box.setToolTip("The config to check the target with: paths mapped, files visible, config valid. "
                                   "Without one: login, shared files and the trainer only.")
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._browse_config)
        self.test_button = QPushButton("Test / preflight", self)
        self.test_button.setObjectName("testButton")
        self.test_button.clicked.connect(lambda: self.run_check())
        self.install_button = QPushButton("Install trainer from wheel…", self)
        self.install_button.setToolTip("pip-install the lora_studio wheel from the shared storage into a venv there")
        self.install_button.clicked.connect(self._ask_wheel)
        self.install_button.hide()
        check_row = QHBoxLayout()
        check_row.addWidget(QLabel("Check with:", self))
        check_row.addWidget(self.config_box, 1)
        check_row.addWidget(browse)
        check_row.addWidget(self.test_button)
        self.summary = QLabel("Select a target and press Test / preflight.", self)
        self.summary.setObjectName("preflightSummary")
        self.summary.setWordWrap(True)
        self.checks = ChecksModel(self)
        self.checks_view = make_table(self, self.checks, "checksTable")
        self.checks_view.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.checks_view.setWordWrap(True)
        header = self.checks_view.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        summary_row = QHBoxLayout()
        summary_row.addWidget(self.summary, 1)
        summary_row.addWidget(self.install_button)
        bottom = column(self, check_row, summary_row, (self.checks_view, 1))

        splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.addWidget(top)
        splitter.addWidget(bottom)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([150, 450])  # a few targets; the checks need the room
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)
        store.changed.connect(self._reload)
        self._reload()
        self.refresh_configs()

    # -- the list -------------------------------------------------------------------------
    def _reload(self) -> None:
        current = self.selected()
        self.model.set_rows(self.store.settings.targets)
        self.select(current.name if current else (self.model.rows[0].name if self.model.rows else ""))
        self._update_buttons()

    def select(self, name: str) -> None:
        """Select the target called ``name``."""
        for row, target in enumerate(self.model.rows):
            if target.name == name:
                self.table.selectRow(row)
                return

    def selected(self) -> Target | None:
        """The selected target."""
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        return rows[0].data(ROW_ROLE) if rows else None

    def _update_buttons(self) -> None:
        has = self.selected() is not None
        for button in (self.edit_button, self.remove_button):
            button.setEnabled(has)
        self.test_button.setEnabled(has and not self.checking)

    def add_target(self, kind: str, vm: VmRow | None = None, vcenter: str = "",
                   suggested: Suggested | None = None) -> TargetDialog:
        """Open the dialog for a new target of ``kind`` (a VM from the inventory, and what made it, prefill it)."""
        return self._open_dialog(TargetDialog(kind, None, vcenters=[v.name for v in self.store.settings.vcenters],
                                              vm=vm, vcenter=vcenter, workspace=self.workspace(), suggested=suggested,
                                              parent=self))

    def edit_selected(self) -> TargetDialog | None:
        """Open the dialog for the selected target."""
        target = self.selected()
        if target is None:
            return None
        return self._open_dialog(TargetDialog(target.kind, target, vcenters=[v.name for v in self.store.settings.vcenters],
                                              workspace=self.workspace(), parent=self))

    def _open_dialog(self, dialog: TargetDialog) -> TargetDialog:
        self.dialog = dialog

        def accepted() -> None:
            target = dialog.result_target
            try:
                self.store.put_target(target, dialog.original.name if dialog.original else None)
            except (TargetError, OSError) as exc:
                self.trust.refused("Target not saved", str(exc))
                return
            self.save_secrets(dialog.secrets(target))
            self.select(target.name)

        dialog.accepted.connect(accepted)
        dialog.finished.connect(lambda _: dialog.deleteLater())
        dialog.open()
        return dialog

    def save_secrets(self, secrets: list[tuple[str, str]]) -> None:
        """Passwords to the OS keyring, in a worker (a locked keyring may take a while to answer)."""
        def save() -> None:
            for account, password in secrets:
                store_password(account, password)
        if secrets:
            self.runner.start(save, on_error=lambda m: self.trust.refused("Password not saved", m))

    def remove_selected(self) -> None:
        """Ask, then forget the selected target and its saved passwords."""
        target = self.selected()
        if target is None:
            return
        box = QMessageBox(QMessageBox.Icon.Question, "Remove target",
                          f"Remove the target {target.name!r}? Its runs stay in the workspace.",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self)
        box.setObjectName("removePrompt")

        def answered(button) -> None:
            if box.standardButton(button) != QMessageBox.StandardButton.Yes:
                return
            self.store.remove_target(target.name)
            accounts = secret_accounts(target)
            if accounts:
                self.runner.start(lambda: [forget_password(a) for a in accounts],
                                  on_error=lambda m: self.trust.refused("Password not removed", m))
        box.buttonClicked.connect(answered)
        box.finished.connect(lambda _: box.deleteLater())
        box.open()
        self.remove_prompt = box

    # -- preflight --------------------------------------------------------------------------
    def refresh_configs(self) -> None:
        """The workspace's configs (configs/*.yaml) to check with, keeping the current choice."""
        current = self.config_box.currentData()
        self.config_box.clear()
        self.config_box.addItem(CONNECTIVITY, None)
        workspace = self.workspace()
        if workspace is not None and (workspace / "configs").is_dir():
            for path in sorted((workspace / "configs").glob("*.y*ml")):
                self.config_box.addItem(path.name, str(path))
        if current:
            self.set_config(Path(current))

    def set_config(self, path: Path) -> None:
        """Check with ``path`` (added to the list when it is not there)."""
        index = self.config_box.findData(str(path))
        if index < 0:
            self.config_box.addItem(path.name, str(path))
            index = self.config_box.count() - 1
        self.config_box.setCurrentIndex(index)

    def _browse_config(self) -> None:
        start = self.workspace() or Path.home()
        chosen, _ = QFileDialog.getOpenFileName(self, "Config to check with", str(start), "YAML (*.yaml *.yml)")
        if chosen:
            self.set_config(Path(chosen))

    def run_check(self, target: Target | None = None) -> None:
        """Test the selected target in a worker: the full preflight with a config, else connectivity."""
        target = target or self.selected()
        if target is None or self.checking:
            return
        config = self.config_box.currentData()
        self.checking = True
        self._update_buttons()
        self.install_button.hide()
        what = f"preflight with {Path(config).name}" if config else "connection"
        self.summary.setText(f"Checking the {what} on {target.name}…")
        self.checks.set_rows([])
        self.runner.start(check_target, target, self.store.context(), Path(config) if config else None,
                          self.workspace(), gpu_notes_file(), on_done=partial(self._checked, target),
                          on_error=partial(self._check_failed, target))

    def _check_failed(self, target: Target, message: str) -> None:
        self.checking = False
        self._update_buttons()
        self.summary.setText(f"<b style='color:#dc2626'>The check of {target.name} failed:</b> {message}")

    def _checked(self, target: Target, report: PreflightReport) -> None:
        self.checking = False
        self._update_buttons()
        self.report = report
        self.checks.set_rows(report.checks)
        self.checks_view.resizeRowsToContents()
        errors = sum(c.status == "error" for c in report.checks)
        warnings = sum(c.status == "warning" for c in report.checks)
        if errors:
            self.summary.setText(f"<b style='color:#dc2626'>✗ {errors} problem{'s' if errors > 1 else ''} would stop a "
                                 f"launch on {target.name}.</b> Each says what to do.")
        else:
            extra = f" ({warnings} warning{'s' if warnings > 1 else ''})" if warnings else ""
            self.summary.setText(f"<b style='color:#15803d'>✓ {target.name} is ready{extra}.</b>")
        self.install_button.setVisible(report.trainer_missing and not isinstance(target, LocalTarget)
                                       and getattr(target, "launch", "ssh") == "ssh")
        self.checkFinished.emit(report)
        refused = refusal(report)
        if isinstance(report.trust, UntrustedHostKey):
            self.trust.ask_host_key(report.trust, lambda: self.run_check(target))
        elif isinstance(report.trust, UntrustedCertificate) and not isinstance(target, (LocalTarget, SshTarget)):
            self.trust.ask_certificate(target.vcenter, lambda: self.run_check(target))
        elif refused:
            hint = next((c.hint for c in report.checks if c.message == refused), "")
            self.trust.refused("Connection refused", refused, hint)

    # -- installing the trainer ---------------------------------------------------------------
    def _ask_wheel(self) -> None:
        target = self.selected()
        start = self.workspace() or Path.home()
        chosen, _ = QFileDialog.getOpenFileName(self, "lora_studio wheel on the shared storage", str(start),
                                                "Wheels (lora_studio-*.whl)")
        if target is not None and chosen:
            self.install(target, Path(chosen))

    def install(self, target: Target, wheel: Path) -> None:
        """Install the trainer on ``target`` from ``wheel`` (a desktop path under a mapped folder)."""
        try:
            remote = target.mapper().to_target(str(wheel), what="the wheel")
        except TargetError as exc:
            self.trust.refused("Not installed", exc.message, exc.hint)
            return
        self.summary.setText(f"Installing the trainer on {target.name} from {wheel.name} (a few minutes)…")
        self.install_button.setEnabled(False)

        def done(result: Captured) -> None:
            self.install_button.setEnabled(True)
            if result.error is not None:
                self.summary.setText(f"<b style='color:#dc2626'>Not installed:</b> {result.error}")
                return
            self.store.put_target(replace(target, python=result.value), target.name)
            self.run_check(self.store.settings.target(target.name))

        self.runner.start(capture, install_trainer, target, remote, self.store.context(), on_done=done,
                          on_error=lambda m: (self.install_button.setEnabled(True),
                                              self.summary.setText(f"Not installed: {m}")))
