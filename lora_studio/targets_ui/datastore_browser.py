"""The Datastores view of the vSphere tab: a datastore's folders through vCenter (read-only), to
find a base model or dataset when this computer has no SMB/NFS mount of the share.

A datastore path (``[vsanDatastore] lora/models/base.safetensors``) is not a path a VM can
open: each VM sees the share where it mounts it. So for the selected file the view says what
each vSphere target of this vCenter sees there, through the target's path mapping, or that a
mapping is needed and which one.
"""

from __future__ import annotations

import html
import posixpath
from typing import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (QComboBox, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QStyle, QTreeWidget, QTreeWidgetItem,
                               QVBoxLayout, QWidget)

from trainer.wording import human_size, plural

from ..boxes import push_button
from ..targets import Target, TargetConfigError, TargetContext, VCenter
from ..vsphere import Entry
from ..vsphere.datastore import datastore_path
from ..workers.tasks import TaskRunner
from .jobs import Captured, capture
from .vsphere_jobs import browse_folder, datastore_names


def seen_by(targets: list[Target], path: str) -> list[tuple[str, str]]:
    """(target, what it sees at the datastore path ``path``) for each target; "" where no mapping covers it.

    A target without mappings passes paths through unchanged, and ``[ds] folder`` is no path a
    VM can open: only a mapping that turns it into an absolute path counts.
    """
    out = []
    for target in targets:
        try:
            seen = target.mapper().to_target(path, what="the file")
        except TargetConfigError:
            seen = ""
        out.append((target.name, seen if seen != path and seen.startswith("/") else ""))
    return out


class DatastoreBrowser(QWidget):
    """Datastore, folder, its entries, and what the targets see at the selected one."""

    listed = Signal(int)         # entries shown (tests wait on it)

    def __init__(self, vcenter: Callable[[], VCenter | None], context: Callable[[], TargetContext],
                 targets: Callable[[], list[Target]], runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vcenter, self.context, self.targets, self.runner = vcenter, context, targets, runner
        self.folder = ""
        self.entries: list[Entry] = []
        self.loading = False

        self.datastore = QComboBox(self)
        self.datastore.setObjectName("datastoreChoice")
        self.datastore.setMinimumContentsLength(16)
        self.datastore.activated.connect(lambda _: self.open_folder(""))
        self.up_button = push_button("Up", self, self.up, tip="The folder above")
        self.up_button.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_FileDialogToParent))
        self.refresh_button = push_button("Refresh", self, self.refresh)
        self.where = QLabel(self)
        self.where.setObjectName("datastoreFolder")
        self.where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        top = QHBoxLayout()
        top.addWidget(QLabel("Datastore:", self))
        top.addWidget(self.datastore)
        top.addWidget(self.up_button)
        top.addWidget(self.where, 1)
        top.addWidget(self.refresh_button)
        self.tree = QTreeWidget(self)
        self.tree.setObjectName("datastoreEntries")
        self.tree.setHeaderLabels(["Name", "Size", "Modified"])
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(False)
        self.tree.itemActivated.connect(lambda item, _: self._activated(item))
        self.tree.itemSelectionChanged.connect(self.show_selection)
        self.status = QLabel("Press Refresh to list the datastores. Browsing is read-only.", self)
        self.status.setObjectName("datastoreStatus")
        self.status.setWordWrap(True)
        self.mapping = QLabel(self)
        self.mapping.setObjectName("datastoreMapping")
        self.mapping.setWordWrap(True)
        self.mapping.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.copy_button = push_button("Copy path", self, self.copy_path, name="copyDatastorePath",
                                       tip="Copy the path as the VM sees it (the datastore path when no target maps it)")
        # The label sits in a column of its own: a word-wrapped label beside a button gets too little height.
        seen = QGroupBox("Where the training VMs find it", self)
        seen_layout = QVBoxLayout(seen)
        seen_layout.addWidget(self.mapping)
        copy_row = QHBoxLayout()
        copy_row.addStretch(1)
        copy_row.addWidget(self.copy_button)
        seen_layout.addLayout(copy_row)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(self.tree, 1)
        layout.addWidget(seen)
        self.show_selection()

    def clear(self) -> None:
        """Forget what was shown (another vCenter was chosen)."""
        self.datastore.clear()
        self.tree.clear()
        self.entries, self.folder = [], ""
        self.where.setText("")
        self.status.setText("Press Refresh to list the datastores. Browsing is read-only.")
        self.show_selection()

    # -- listing ---------------------------------------------------------------------------------
    def refresh(self) -> None:
        """List the datastores (first time), else the current folder again."""
        if self.datastore.count() == 0:
            self._start("Listing the datastores…", datastore_names, on_done=self._datastores)
        else:
            self.open_folder(self.folder)

    def _start(self, doing: str, fn, *args, on_done) -> None:
        vcenter = self.vcenter()
        if vcenter is None or self.loading:
            return
        self.loading = True
        self.refresh_button.setEnabled(False)
        self.status.setText(html.escape(doing))
        def done(result: Captured) -> None:
            if self.vcenter() != vcenter:  # another vCenter was chosen meanwhile: not its datastores
                self.loading = False
                self.refresh_button.setEnabled(True)
                return
            on_done(result)

        self.runner.start(capture, fn, vcenter, self.context(), *args, on_done=done, on_error=self._failed, owner=self)

    def _failed(self, message: str) -> None:
        self.loading = False
        self.refresh_button.setEnabled(True)
        self.status.setText(f"<span style='color:#dc2626'>{html.escape(message)}</span>")

    def _datastores(self, result: Captured) -> None:
        self.loading = False
        self.refresh_button.setEnabled(True)
        if result.error is not None:
            self._failed(result.error.explained())
            return
        self.datastore.clear()
        self.datastore.addItems(result.value)
        if result.value:
            self.open_folder("")
        else:
            self.status.setText("This vCenter has no datastores.")

    def open_folder(self, folder: str) -> None:
        """List ``folder`` (from the datastore's top) of the chosen datastore."""
        datastore = self.datastore.currentText()
        if not datastore:
            return
        where = datastore_path(datastore, folder)
        self._start(f"Reading {where}…", browse_folder, datastore, folder,
                    on_done=lambda result: self._listed(datastore, folder, result))

    def _listed(self, datastore: str, folder: str, result: Captured) -> None:
        self.loading = False
        self.refresh_button.setEnabled(True)
        if result.error is not None:
            self._failed(result.error.explained())
            return
        self.folder, self.entries = folder, list(result.value)
        self.where.setText(f"<tt>{html.escape(datastore_path(datastore, folder))}</tt>")
        self.up_button.setEnabled(bool(folder))
        self.tree.clear()
        folder_icon = self.style().standardIcon(QStyle.StandardPixmap.SP_DirIcon)
        file_icon = self.style().standardIcon(QStyle.StandardPixmap.SP_FileIcon)
        for entry in self.entries:
            item = QTreeWidgetItem(self.tree, [entry.name, "" if entry.is_folder else human_size(entry.size),
                                               entry.modified[:16].replace("T", " ")])
            item.setIcon(0, folder_icon if entry.is_folder else file_icon)
            item.setData(0, Qt.ItemDataRole.UserRole, entry.path)
            item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        folders = sum(e.is_folder for e in self.entries)
        self.status.setText(f"{plural(folders, 'folder')}, {plural(len(self.entries) - folders, 'file')}. "
                            "Double-click a folder to "
                            "open it; select a file or folder to see where the VMs find it. Read-only."
                            if self.entries else "This folder is empty.")
        self.show_selection()
        self.listed.emit(len(self.entries))

    def _activated(self, item: QTreeWidgetItem) -> None:
        entry = self._entry(item)
        if entry is not None and entry.is_folder:
            self.open_folder(posixpath.join(self.folder, entry.name) if self.folder else entry.name)

    def up(self) -> None:
        """Open the folder above."""
        if self.folder:
            self.open_folder(posixpath.dirname(self.folder))

    def _entry(self, item: QTreeWidgetItem | None) -> Entry | None:
        path = item.data(0, Qt.ItemDataRole.UserRole) if item is not None else None
        return next((e for e in self.entries if e.path == path), None)

    def selected(self) -> Entry | None:
        """The selected file or folder."""
        items = self.tree.selectedItems()
        return self._entry(items[0]) if items else None

    def select(self, name: str) -> None:
        """Select the entry called ``name``."""
        for index in range(self.tree.topLevelItemCount()):
            if self.tree.topLevelItem(index).text(0) == name:
                self.tree.setCurrentItem(self.tree.topLevelItem(index))
                return

    # -- where the VMs see it ----------------------------------------------------------------------
    def show_selection(self) -> None:
        """Say where the training VMs find the selected entry (again after the targets changed)."""
        entry = self.selected()
        self.copy_button.setEnabled(entry is not None)
        if entry is None:
            self.mapping.setText("Select a file or folder to see the path a training VM uses for it.")
            return
        seen = seen_by(self.targets(), entry.path)
        lines = [f"<b>{html.escape(entry.path)}</b>"]
        lines += [f"{html.escape(name)} sees it at <tt>{html.escape(path)}</tt>" for name, path in seen if path]
        if not any(path for _, path in seen):
            top = datastore_path(self.datastore.currentText(), entry.path.split("] ", 1)[-1].split("/", 1)[0])
            who = ", ".join(name for name, _ in seen) or "no vSphere target of this vCenter yet"
            lines.append(f"<span style='color:#a16207'>No target maps this path ({html.escape(who)}). A VM sees the "
                         f"datastore only through its own mount of the share: give its target a path mapping from "
                         f"<tt>{html.escape(top)}</tt> to the folder where the VM mounts it, e.g. "
                         f"<tt>/data/lora</tt> (Targets tab, Edit…).</span>")
        self.mapping.setText("<br>".join(lines))

    def vm_path(self) -> str:
        """The selected entry as the first target that maps it sees it; else its datastore path."""
        entry = self.selected()
        if entry is None:
            return ""
        return next((path for _, path in seen_by(self.targets(), entry.path) if path), entry.path)

    def copy_path(self) -> None:
        """Copy :meth:`vm_path` to the clipboard (to paste into a config or a dialog)."""
        path = self.vm_path()
        if path:
            QGuiApplication.clipboard().setText(path)
            self.status.setText(f"Copied <tt>{html.escape(path)}</tt>.")
