"""The Hosts and GPUs view of the vSphere tab: each cluster with vSphere HA and DRS, its hosts
with their GPUs (free, or which VM has each) and the VMs on each host.

HA off is shown in the warning colour: a host failure then stops a training VM for good
(until someone restarts it), which is what the IT admin looks here for.
"""

from __future__ import annotations

import html
from typing import Callable

from PySide6.QtCore import Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import QHBoxLayout, QHeaderView, QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from trainer.wording import plural

from ..boxes import push_button
from ..targets import TargetContext, VCenter
from ..vsphere import ClusterView, HostView
from ..workers.tasks import TaskRunner
from .jobs import Captured, capture
from .models import POWER_TEXT
from .vsphere_jobs import clusters

WARN, OK, MUTED = "#a16207", "#15803d", "#6b7280"


def cluster_state(cluster: ClusterView) -> str:
    """HA and DRS of a cluster in words."""
    if cluster.standalone:
        return "standalone host: no HA, no DRS"
    drs = f"DRS on ({cluster.drs_behavior})" if cluster.drs and cluster.drs_behavior else ("DRS on" if cluster.drs else "DRS off")
    return f"{'HA on' if cluster.ha else '⚠ HA off'} · {drs}"


def host_state(host: HostView) -> str:
    """A host's connection, size and GPUs in words."""
    free = sum(g.free for g in host.gpus.passthrough)
    parts = [host.connection + (", maintenance mode" if host.maintenance else ""),
             f"{host.cpus} cores, {host.memory_gb:g} GB", f"GPUs {free} of {len(host.gpus.passthrough)} free"]
    if host.gpus.vgpu_profiles:
        parts.append(f"vGPU profiles {', '.join(host.gpus.vgpu_profiles)}")
    return " · ".join(parts)


class ClusterViewPage(QWidget):
    """A tree: cluster → host → GPUs and VMs."""

    loaded = Signal(int)    # clusters shown (tests wait on it)

    def __init__(self, vcenter: Callable[[], VCenter | None], context: Callable[[], TargetContext],
                 runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vcenter, self.context, self.runner = vcenter, context, runner
        self.view: list[ClusterView] = []
        self.loading = False
        self.status = QLabel("Press Refresh to read the hosts, their GPUs and VMs.", self)
        self.status.setObjectName("clusterStatus")
        self.status.setWordWrap(True)
        self.refresh_button = push_button("Refresh", self, self.refresh)
        self.tree = QTreeWidget(self)
        self.tree.setObjectName("clusterTree")
        self.tree.setHeaderLabels(["Cluster / host / GPU / VM", "State", "Details"])
        self.tree.setAlternatingRowColors(True)
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        top = QHBoxLayout()
        top.addWidget(self.status, 1)
        top.addWidget(self.refresh_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.tree, 1)

    def clear(self) -> None:
        """Forget what was shown (another vCenter was chosen)."""
        self.view = []
        self.tree.clear()
        self.status.setText("Press Refresh to read the hosts, their GPUs and VMs.")

    def refresh(self) -> None:
        """Read the cluster view in a worker."""
        vcenter = self.vcenter()
        if vcenter is None or self.loading:
            return
        self.loading = True
        self.refresh_button.setEnabled(False)
        self.status.setText(f"Reading the hosts of {html.escape(vcenter.name)}…")
        self.runner.start(capture, clusters, vcenter, self.context(), on_done=lambda r: self._done(vcenter, r),
                          on_error=self._failed, owner=self)

    def _failed(self, message: str) -> None:
        self.loading = False
        self.refresh_button.setEnabled(True)
        self.status.setText(f"<span style='color:#dc2626'>{html.escape(message)}</span>")

    def _done(self, vcenter: VCenter, result: Captured) -> None:
        if self.vcenter() != vcenter:  # another vCenter was chosen meanwhile: this one's hosts are not wanted
            self.loading = False
            self.refresh_button.setEnabled(True)
            return
        if result.error is not None:
            self._failed(result.error.explained())
            return
        self.loading = False
        self.refresh_button.setEnabled(True)
        self.show_view(result.value)

    def show_view(self, view: list[ClusterView]) -> None:
        """Show ``view`` (clusters first, then standalone hosts)."""
        self.view = list(view)
        self.tree.clear()
        bold = QFont(self.tree.font())
        bold.setBold(True)
        for cluster in view:
            if cluster.standalone:
                for host in cluster.hosts:
                    item = self._host(self.tree.invisibleRootItem(), host, "standalone host: no HA, no DRS")
                    item.setFont(0, bold)
                continue
            top = QTreeWidgetItem([cluster.name, "cluster", cluster_state(cluster)])
            top.setFont(0, bold)
            top.setForeground(2, QBrush(QColor(OK if cluster.ha else WARN)))
            if not cluster.ha:
                top.setToolTip(2, "With HA off, a failed host stops its training VMs until someone restarts them "
                                  "elsewhere; the run resumes from its last checkpoint")
            self.tree.addTopLevelItem(top)
            for host in cluster.hosts:
                self._host(top, host)
        self.tree.expandAll()
        hosts = sum(len(c.hosts) for c in view)
        gpus = [g for c in view for h in c.hosts for g in h.gpus.passthrough]
        self.status.setText(f"{plural(sum(not c.standalone for c in view), 'cluster')}, {plural(hosts, 'host')}, "
                            f"{sum(g.free for g in gpus)} of {len(gpus)} passthrough GPUs free.")
        self.loaded.emit(len(view))

    def _host(self, parent: QTreeWidgetItem, host: HostView, note: str = "") -> QTreeWidgetItem:
        item = QTreeWidgetItem(parent, [host.name, "host", host_state(host) + (f" · {note}" if note else "")])
        if host.connection != "connected" or host.maintenance:
            item.setForeground(1, QBrush(QColor(WARN)))
        for gpu in host.gpus.passthrough:
            child = QTreeWidgetItem(item, [f"GPU {gpu.id}", "free" if gpu.free else "used",
                                           gpu.name + ("" if gpu.free else f" — used by {', '.join(gpu.used_by)}")])
            child.setForeground(1, QBrush(QColor(OK if gpu.free else MUTED)))
        for vm_name, profile in host.gpus.vgpus_in_use:
            QTreeWidgetItem(item, [f"vGPU {profile}", "used", f"used by {vm_name}"])
        for vm in host.vms:
            state = "template" if vm.template else POWER_TEXT.get(vm.power_state, vm.power_state).lower()
            child = QTreeWidgetItem(item, [f"VM {vm.name}", state, ", ".join(vm.gpus) or "no GPU"])
            if vm.power_state == "poweredOn" and not vm.template:
                child.setForeground(1, QBrush(QColor(OK)))
        return item
