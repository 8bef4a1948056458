"""Choose the targets one run spans (torchrun on each), and how it restarts after a lost worker.

A small dialog for the Train page's "Several targets…" choice: the SSH hosts and VMs of the
Targets panel as a checklist in their saved order (drag to reorder: the first chosen one hosts
the rendezvous), the number of restarts and the rendezvous port. Nothing is checked here: the
launch's preflight checks every node and the network between them.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QDialogButtonBox, QFormLayout, QLabel, QListWidget,
                               QListWidgetItem, QSpinBox, QVBoxLayout, QWidget)

from ..targets.model import SshTarget, Target, VSphereTarget
from ..targets.multinode import DEFAULT_MAX_RESTARTS, NodesOptions


@dataclass(frozen=True)
class NodesChoice:
    """The targets of one run, the rendezvous host first, and its launch options."""

    targets: tuple[str, ...]
    options: NodesOptions = NodesOptions()

    def label(self) -> str:
        """``gpu-a + gpu-b (2 nodes)``: what the Run on list shows for it."""
        return f"{' + '.join(self.targets)} ({len(self.targets)} nodes)"


def node_capable(targets: list[Target]) -> list[Target]:
    """The targets that can be nodes of a multi-node run: SSH hosts and VMs started over SSH."""
    return [t for t in targets if isinstance(t, SshTarget) or (isinstance(t, VSphereTarget) and t.launch == "ssh")]


def _where(target: Target) -> str:
    if isinstance(target, SshTarget):
        return f"{target.user}@{target.host}"
    return f"VM {target.vm}" if isinstance(target, VSphereTarget) else target.kind


class NodesDialog(QDialog):
    """A checklist of targets plus restarts and port; :meth:`choice` is the result after Accept."""

    def __init__(self, targets: list[Target], current: NodesChoice | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("nodesDialog")
        self.setWindowTitle("Run on several targets")
        self.setMinimumWidth(520)
        chosen = list(current.targets) if current else []
        # The chosen ones first, in their order, then the rest as saved.
        ordered = [t for name in chosen for t in targets if t.name == name] + [t for t in targets if t.name not in chosen]
        intro = QLabel("One run over several machines: torchrun starts on each, and the processes of all of them "
                       "train one LoRA. The machines need the shared folder at the same path, the same trainer, "
                       "and a network between them. <b>The first chosen target hosts the rendezvous</b>; drag to "
                       "reorder.", self)
        intro.setWordWrap(True)
        self.list = QListWidget(self)
        self.list.setObjectName("nodeList")
        self.list.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        for target in ordered:
            interface = f", interface {target.network_interface}" if target.network_interface else ""
            item = QListWidgetItem(f"{target.name}    ({_where(target)}{interface})", self.list)
            item.setData(Qt.ItemDataRole.UserRole, target.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if target.name in chosen else Qt.CheckState.Unchecked)
        self.list.setSpacing(2)
        rows = max(3, min(self.list.count(), 8))  # as tall as its rows, up to eight
        self.list.setFixedHeight((self.list.sizeHintForRow(0) + 4) * rows + 2 * self.list.frameWidth() + 6)
        options = current.options if current else NodesOptions()
        self.restarts = QSpinBox(self)
        self.restarts.setObjectName("maxRestarts")
        self.restarts.setRange(0, 100)
        self.restarts.setValue(options.max_restarts)
        self.restarts.setToolTip("How often torchrun starts the workers again after one fails or its machine is lost "
                                 f"(they continue from the last checkpoint); {DEFAULT_MAX_RESTARTS} by default")
        self.port = QSpinBox(self)
        self.port.setObjectName("rendezvousPort")
        self.port.setRange(0, 65535)
        self.port.setSpecialValueText("any free port")
        self.port.setValue(options.rdzv_port)
        self.port.setToolTip("The TCP port of the rendezvous on the first target (open it in its firewall), "
                             "or any free one")
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
        form.addRow("Restarts after a lost worker:", self.restarts)
        form.addRow("Rendezvous port:", self.port)
        self.note = QLabel(self)
        self.note.setObjectName("nodesNote")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel,
                                        self)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.list)
        layout.addLayout(form)
        layout.addWidget(self.note)
        layout.addWidget(self.buttons)
        self.list.itemChanged.connect(lambda _item: self._update())
        self.list.model().rowsMoved.connect(lambda *_: self._update())
        self._update()

    def chosen_names(self) -> list[str]:
        """The checked targets, in list order (the rendezvous host first)."""
        items = (self.list.item(row) for row in range(self.list.count()))
        return [item.data(Qt.ItemDataRole.UserRole) for item in items if item.checkState() == Qt.CheckState.Checked]

    def choice(self) -> NodesChoice:
        """The targets and options as chosen."""
        return NodesChoice(tuple(self.chosen_names()),
                           NodesOptions(max_restarts=self.restarts.value(), rdzv_port=self.port.value()))

    def _update(self) -> None:
        names = self.chosen_names()
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(len(names) >= 2)
        if len(names) < 2:
            self.note.setText("Choose two targets or more.")
        else:
            self.note.setText(f"{len(names)} nodes; {names[0]} hosts the rendezvous.")
