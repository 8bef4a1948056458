"""Where a multi-node run runs, as the Runs page shows it: its nodes, their processes and the rendezvous.

Read from the run's ``run.json`` (:mod:`lora_studio.targets.placement`), like everything the page
shows: no connection to the nodes is needed to see where the run is.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QWidget

from ..targets.placement import Placement


def placement_html(placement: Placement) -> str:
    """A heading line and a small table of the nodes (target, address, processes, interface, log)."""
    restarts = f"up to {placement.max_restarts} restart{'s' if placement.max_restarts != 1 else ''} after a lost worker"
    head = (f"<b>Placement:</b> {html.escape(placement.describe())} ({placement.world_size} in all) &nbsp;·&nbsp; "
            f"rendezvous {html.escape(placement.endpoint)} &nbsp;·&nbsp; {restarts}")
    cell = "style='padding: 1px 14px 1px 0px;'"
    header = "".join(f"<th align='left' {cell}>{title}</th>"
                     for title in ("Node", "Target", "Address", "Processes", "Interface", "Output"))
    rows = []
    for number, node in enumerate(placement.nodes, 1):
        values = (str(number), node.target + (" (rendezvous)" if number == 1 else ""), node.host, str(node.processes),
                  node.interface or "automatic", node.log)
        rows.append("<tr>" + "".join(f"<td {cell}>{html.escape(v)}</td>" for v in values) + "</tr>")
    return f"{head}<table cellspacing='0'><tr>{header}</tr>{''.join(rows)}</table>"


def node_logs(placement: Placement | None) -> list[tuple[str, str]]:
    """(label, file name) of each node's output in the run folder, for the log pane's choice of node."""
    if placement is None:
        return []
    return [(f"Node {number}: {node.target}", node.log) for number, node in enumerate(placement.nodes, 1)]


def placement_tip(placement: Placement) -> str:
    """One line for a tooltip: ``2 nodes × 1 process: gpu-a (10.0.0.1), gpu-b (10.0.0.2)``."""
    nodes = ", ".join(f"{n.target} ({n.host})" for n in placement.nodes)
    return f"{placement.describe()}: {nodes}"


class PlacementLabel(QLabel):
    """The nodes of the shown run; hidden for a run on one machine."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("runPlacement")
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hide()

    def show_placement(self, placement: Placement | None) -> None:
        """Show ``placement`` (None: a one-machine run, nothing to show)."""
        text = placement_html(placement) if placement is not None else ""
        if text != self.text():
            self.setText(text)
        self.setVisible(placement is not None)
