"""The Train page's "Several targets…" choice: one run over several targets, and the run's nodes once chosen.

Choosing "Several targets…" in Run on opens the nodes dialog; its choice becomes an entry of
its own in the list (``gpu-a + gpu-b (2 nodes)``) that Start launches with torchrun on each
(:func:`lora_studio.targets.launch_nodes`). Cancel puts the previous choice back. The Train
page's figures count the run's processes (nodes × processes per node): they share its steps.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt

from ..fleet import GpuNote, load_gpu_notes
from ..targets.model import Target
from ..targets_ui.nodes_dialog import NodesChoice, NodesDialog, node_capable
from ..targets_ui.store import gpu_notes_file
from ..training.analysis import Processes
from ..training.page import TrainingPage

SEVERAL_TARGETS = "Several targets…"
NODES_ROLE = Qt.ItemDataRole.UserRole + 7  # the NodesChoice of the entry that holds one


class NodeChoice(QObject):
    """Adds "Several targets…" to ``training``'s Run on list and keeps the nodes chosen for the run."""

    def __init__(self, training: TrainingPage, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.training = training
        self.box = training.target_box
        self.targets: list[Target] = []
        self.current: NodesChoice | None = None
        self.dialog: NodesDialog | None = None
        self._before = 0  # the entry to go back to when the dialog is cancelled
        self._selected = False  # whether the user's last choice in Run on was the nodes' entry
        self.box.currentIndexChanged.connect(self._remember)
        self.box.currentIndexChanged.connect(lambda _index: training.set_processes(self.processes()))
        self.box.activated.connect(self._activated)

    def offer(self, targets: list[Target]) -> None:
        """After the page's list was filled: the chosen nodes (while they all exist) and "Several targets…"."""
        self.targets = node_capable(targets)
        names = {t.name for t in self.targets}
        if self.current is not None and not set(self.current.targets) <= names:
            self.current = None  # a node was removed or renamed in the Targets panel
        if len(self.targets) < 2:
            return
        if self.current is not None:
            index = self._add_entry(self.current)
            if self._selected:  # the list was filled again: the user's choice stays
                self.box.setCurrentIndex(index)
        self.box.addItem(SEVERAL_TARGETS)
        self.box.setItemData(self.box.count() - 1, "Train one run on the GPUs of several targets at once (torchrun)",
                             Qt.ItemDataRole.ToolTipRole)

    def chosen(self) -> NodesChoice | None:
        """The nodes when Run on shows a several-targets entry, else None (one target)."""
        data = self.box.currentData(NODES_ROLE)
        return data if isinstance(data, NodesChoice) else None

    def processes(self) -> Processes:
        """The trainer processes of the chosen Run on: one for one target, else nodes × processes per node."""
        choice = self.chosen()
        return Processes() if choice is None else run_processes(choice, load_gpu_notes(gpu_notes_file()))

    def _add_entry(self, choice: NodesChoice) -> int:
        index = self.box.findText(choice.label())
        if index < 0:
            at = self.box.findText(SEVERAL_TARGETS)
            index = at if at >= 0 else self.box.count()
            self.box.insertItem(index, choice.label())
        self.box.setItemData(index, choice, NODES_ROLE)
        self.box.setItemData(index, "torchrun on " + ", ".join(choice.targets) + f"; {choice.targets[0]} hosts the "
                             "rendezvous", Qt.ItemDataRole.ToolTipRole)
        return index

    def _remember(self, index: int) -> None:
        if self.box.itemText(index) != SEVERAL_TARGETS:
            self._before = index

    def _activated(self, index: int) -> None:
        if self.box.itemText(index) != SEVERAL_TARGETS:
            self._selected = isinstance(self.box.itemData(index, NODES_ROLE), NodesChoice)
            return
        dialog = self.dialog = NodesDialog(self.targets, self.current, self.box.window())
        dialog.accepted.connect(self._accepted)
        dialog.rejected.connect(lambda: self.box.setCurrentIndex(self._before))
        dialog.finished.connect(lambda _code: self._closed(dialog))
        dialog.open()  # not exec(): the UI thread never waits on a dialog

    def _closed(self, dialog: NodesDialog) -> None:
        if self.dialog is dialog:
            self.dialog = None
        dialog.deleteLater()

    def _accepted(self) -> None:
        if self.dialog is None:
            return
        old = self.current
        self.current = self.dialog.choice()
        if old is not None and old.label() != self.current.label():
            stale = self.box.findText(old.label())
            if stale >= 0:
                self.box.removeItem(stale)
        self.box.setCurrentIndex(self._add_entry(self.current))
        self._selected = True
        self.training.set_processes(self.processes())  # the same entry with other options moves no index


def run_processes(choice: NodesChoice, notes: dict[str, GpuNote]) -> Processes:
    """The processes torchrun starts for ``choice``: its processes per node on each, else each node's GPUs
    as their last preflight reported them (the launch refuses nodes whose counts differ), else one each."""
    nodes = len(choice.targets)
    wanted = choice.options.nproc_per_node
    if wanted > 0:
        return Processes(nodes * wanted, f"{nodes} nodes × {wanted} processes")
    counts = {len(notes[name].gpus) for name in choice.targets if name in notes}
    if len(counts) == 1 and all(name in notes for name in choice.targets):
        gpus = counts.pop()
        if gpus == 0:
            return Processes(nodes, f"{nodes} nodes without a GPU, one process each")
        return Processes(nodes * gpus, f"{nodes} nodes × {gpus} GPU{'s' if gpus > 1 else ''}")
    # A node's GPUs are noted at its first preflight or start from this desk.
    return Processes(nodes, f"{nodes} nodes, one each until their GPUs are known")
