"""The snapshots of the VM selected on the vSphere tab: a tree with when each was taken and why,
and take / revert / delete / "clone for an experiment".

Revert and delete lose something (the VM's changes since, or the snapshot), so both ask first
in a message box; nothing is changed until the user says yes. Every action runs in a worker
and lists the snapshots again afterwards, so the tree always shows what vCenter has.
"""

from __future__ import annotations

import html
import time
from datetime import datetime
from typing import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QHeaderView,
                               QInputDialog, QLabel, QLineEdit, QMessageBox, QTreeWidget, QTreeWidgetItem, QVBoxLayout,
                               QWidget)

from trainer.wording import plural

from ..boxes import push_button
from ..targets import TargetContext, VCenter
from ..vsphere import SnapshotRow
from ..workers.tasks import TaskRunner
from .jobs import Captured, capture
from .vsphere_jobs import clone_experiment, snapshot_action, snapshots_of

POWER_WAS = {"poweredOn": "on", "poweredOff": "off", "suspended": "suspended"}


def taken_at(iso: str) -> str:
    """A snapshot's ISO 8601 time in this computer's time zone, to the minute."""
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


class TakeSnapshotDialog(QDialog):
    """Name, description and whether to include the running VM's memory."""

    def __init__(self, vm: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Take a snapshot of {vm}")
        self.setMinimumWidth(460)
        self.name = QLineEdit(f"{vm}-{time.strftime('%Y%m%d-%H%M')}", self)
        self.description = QLineEdit(self)
        self.description.setPlaceholderText("e.g. known-good: driver 550, CUDA 12.4, trainer 0.4")
        self.memory = QCheckBox("Include the VM's memory (slower; reverting resumes the running VM)", self)
        form = QFormLayout()
        form.addRow("Name:", self.name)
        form.addRow("Description:", self.description)
        form.addRow("", self.memory)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Take snapshot")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)


class SnapshotPanel(QWidget):
    """Snapshots of one VM with the actions on the selected one."""

    listed = Signal(int)         # snapshots shown (tests wait on it)
    cloned = Signal(object)      # the MadeVm of a clone for an experiment

    def __init__(self, vcenter: Callable[[], VCenter | None], context: Callable[[], TargetContext],
                 runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vcenter, self.context, self.runner = vcenter, context, runner
        self.vm = ""
        self.busy = False
        self.rows: list[SnapshotRow] = []
        self.prompt: QMessageBox | QDialog | None = None   # the question open now (tests answer it)

        self.title = QLabel("<b>Snapshots</b>", self)
        self.status = QLabel("Select a VM above to see its snapshots.", self)
        self.status.setObjectName("snapshotStatus")
        self.status.setWordWrap(True)
        self.tree = QTreeWidget(self)
        self.tree.setObjectName("snapshotTree")
        self.tree.setHeaderLabels(["Snapshot", "Taken", "VM was", "Description"])
        self.tree.setRootIsDecorated(True)
        self.tree.setAlternatingRowColors(True)
        header = self.tree.header()
        for column in range(3):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.tree.itemSelectionChanged.connect(self._update_buttons)
        self.take_button = push_button("Take snapshot…", self, self.ask_take, name="takeSnapshotButton")
        self.revert_button = push_button("Revert to…", self, self.ask_revert, name="revertSnapshotButton",
                                         tip="Put the VM back as it was at the selected snapshot")
        self.delete_button = push_button("Delete…", self, self.ask_delete, name="deleteSnapshotButton")
        self.clone_button = push_button("Clone for an experiment…", self, self.ask_clone, name="cloneSnapshotButton",
                                        tip="A linked clone at the selected snapshot, on the same host: seconds to "
                                            "make, little disk; it gets a free GPU of the host when the VM has one")
        self.refresh_button = push_button("Refresh snapshots", self, self.refresh)
        buttons = QHBoxLayout()
        for button in (self.take_button, self.revert_button, self.delete_button, self.clone_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.refresh_button)
        head = QHBoxLayout()
        head.addWidget(self.title)
        head.addWidget(self.status, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(head)
        layout.addWidget(self.tree, 1)
        layout.addLayout(buttons)
        self._update_buttons()

    # -- listing ---------------------------------------------------------------------------------
    def set_vm(self, vm: str) -> None:
        """Show the snapshots of ``vm`` ("" for none selected)."""
        if vm == self.vm:
            return
        self.vm = vm
        self.rows = []
        self.tree.clear()
        self._update_buttons()
        self.title.setText(f"<b>Snapshots of {html.escape(vm)}</b>" if vm else "<b>Snapshots</b>")
        if vm:
            self.refresh()
        else:
            self._say("Select a VM above to see its snapshots.")

    def refresh(self) -> None:
        """List the VM's snapshots again."""
        self._run(f"Reading the snapshots of {self.vm}…", snapshots_of, self.vm)

    def _run(self, doing: str, fn, *args) -> None:
        vcenter = self.vcenter()
        if vcenter is None or not self.vm or self.busy:
            return
        self.busy = True
        self._update_buttons()
        self._say(html.escape(doing))
        vm = self.vm
        self.runner.start(capture, fn, vcenter, self.context(), *args, on_done=lambda r: self._done(vm, r),
                          on_error=self._failed, owner=self)

    def _done(self, vm: str, result: Captured) -> None:
        self.busy = False
        if vm != self.vm:
            self.refresh()  # another VM was selected meanwhile: its list was not read while this ran
            return
        if result.error is not None:
            self._failed(result.error.explained())
            return
        self._show(result.value)

    def _failed(self, message: str) -> None:
        self.busy = False
        self._update_buttons()
        self._say(html.escape(message), "#dc2626")

    def _show(self, rows: list[SnapshotRow]) -> None:
        self.rows = list(rows)
        selected = self.selected()
        self.tree.clear()
        items: dict[str, QTreeWidgetItem] = {}
        for row in rows:
            parent = items.get(row.parent)
            item = QTreeWidgetItem([row.name + ("   ◀ you are here" if row.current else ""), taken_at(row.created),
                                    POWER_WAS.get(row.power_state, row.power_state), row.description])
            item.setData(0, Qt.ItemDataRole.UserRole, row.name)
            item.setToolTip(3, row.description)
            if row.current:
                font = QFont(item.font(0))
                font.setBold(True)
                item.setFont(0, font)
            if parent is None:
                self.tree.addTopLevelItem(item)
            else:
                parent.addChild(item)
            items[row.name] = item
        self.tree.expandAll()
        if selected and selected in items:
            self.tree.setCurrentItem(items[selected])
        if self.vm:
            self._say(f"{plural(len(rows), 'snapshot')}. The VM runs on top of the one marked ◀." if rows else
                      f"{html.escape(self.vm)} has no snapshots yet: take one before an experiment, to come back to.")
        self._update_buttons()
        self.listed.emit(len(rows))

    def selected(self) -> str:
        """The name of the selected snapshot ("" for none)."""
        item = self.tree.currentItem()
        return item.data(0, Qt.ItemDataRole.UserRole) if item is not None and item.isSelected() else ""

    def select(self, name: str) -> None:
        """Select the snapshot called ``name``."""
        for item in self.tree.findItems("*", Qt.MatchFlag.MatchWildcard | Qt.MatchFlag.MatchRecursive):
            if item.data(0, Qt.ItemDataRole.UserRole) == name:
                self.tree.setCurrentItem(item)
                return

    def _update_buttons(self) -> None:
        ready = bool(self.vm) and not self.busy and self.vcenter() is not None
        chosen = ready and bool(self.selected())
        self.take_button.setEnabled(ready)
        self.refresh_button.setEnabled(ready)
        for button in (self.revert_button, self.delete_button, self.clone_button):
            button.setEnabled(chosen)

    def _say(self, text: str, color: str = "") -> None:
        self.status.setText(f"<span style='color:{color}'>{text}</span>" if color else text)

    # -- actions ---------------------------------------------------------------------------------
    def _open(self, prompt: QMessageBox | QDialog, on_yes: Callable[[], None]) -> None:
        self.prompt = prompt

        def finished(code: int) -> None:
            if self.prompt is prompt:
                self.prompt = None
            prompt.deleteLater()
            if isinstance(prompt, QMessageBox):
                yes = prompt.clickedButton() is prompt.button(QMessageBox.StandardButton.Yes)
            else:
                yes = code == QDialog.DialogCode.Accepted.value
            if yes:
                on_yes()
        prompt.finished.connect(finished)
        prompt.open()

    def ask_take(self) -> None:
        """Ask for the new snapshot's name and description, then take it."""
        if not self.vm:
            return
        dialog = TakeSnapshotDialog(self.vm, self)
        vm = self.vm
        self._open(dialog, lambda: self._run(f"Taking snapshot {dialog.name.text().strip()} of {vm}…", snapshot_action,
                                             vm, "take", dialog.name.text().strip(), dialog.description.text().strip(),
                                             dialog.memory.isChecked()))

    def _question(self, title: str, text: str, yes: str) -> QMessageBox:
        box = QMessageBox(QMessageBox.Icon.Warning, title, text,
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self)
        box.button(QMessageBox.StandardButton.Yes).setText(yes)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        return box

    def ask_revert(self) -> None:
        """Ask, then revert the VM to the selected snapshot."""
        name, vm = self.selected(), self.vm
        if not name:
            return
        box = self._question("Revert to snapshot", f"Revert {vm} to the snapshot {name!r}?\n\nEverything that changed "
                             "in the VM since then (its disks and settings) is lost. Files on the shared storage "
                             "are not affected.", "Revert")
        box.setObjectName("revertPrompt")
        self._open(box, lambda: self._run(f"Reverting {vm} to {name}…", snapshot_action, vm, "revert", name))

    def ask_delete(self) -> None:
        """Ask, then delete the selected snapshot (its data merges into the VM)."""
        name, vm = self.selected(), self.vm
        if not name:
            return
        box = self._question("Delete snapshot", f"Delete the snapshot {name!r} of {vm}?\n\nThe VM keeps running as it "
                             "is, but you can no longer go back to this point.", "Delete")
        box.setObjectName("deletePrompt")
        self._open(box, lambda: self._run(f"Deleting snapshot {name} of {vm}…", snapshot_action, vm, "delete", name))

    def ask_clone(self) -> None:
        """Ask for the clone's name, then make a linked clone at the selected snapshot."""
        name, vm = self.selected(), self.vm
        if not name:
            return
        dialog = QInputDialog(self)
        dialog.setWindowTitle("Clone for an experiment")
        dialog.setLabelText(f"A linked clone of {vm} at {name!r}, on the same host. Name of the clone:")
        dialog.setTextValue(f"{vm}-exp-{time.strftime('%m%d-%H%M')}")
        dialog.setMinimumWidth(480)
        self._open(dialog, lambda: self._clone(vm, name, dialog.textValue().strip()))

    def _clone(self, vm: str, snapshot: str, clone: str) -> None:
        vcenter = self.vcenter()
        if vcenter is None or self.busy:
            return
        self.busy = True
        self._update_buttons()
        self._say(html.escape(f"Making {clone}, a linked clone of {vm} at {snapshot}…"))

        def done(result: Captured) -> None:
            self.busy = False
            self._update_buttons()
            if result.error is not None:
                self._say(html.escape(result.error.explained()), "#dc2626")
                return
            made = result.value
            self._say(html.escape(f"Made {made.name} on {made.host} ({', '.join(made.gpus) or 'no GPU'}, "
                                  f"{made.power_state.replace('powered', 'powered ').lower()}): linked to {made.linked_to}."),
                      "#15803d")
            self.cloned.emit(made)

        self.runner.start(capture, clone_experiment, vcenter, self.context(), vm, snapshot, clone, on_done=done,
                          on_error=self._failed, owner=self)
