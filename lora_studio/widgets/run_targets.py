"""The training page's "Run on" choices: this computer, every saved target, any free one of them, and several
of them at once for one run."""

from __future__ import annotations

from ..targets_ui.store import app_context
from ..training.page import TrainingPage
from .node_choice import NodeChoice

# With two targets or more: Start takes the first free one that fits, or queues the run for any of them.
ANY_FREE_TARGET = "Any free target"


def offer_targets(training: TrainingPage, nodes: NodeChoice | None = None) -> None:
    """Fill ``training``'s target list from the saved targets (read again: the Targets panel may have changed them);
    with ``nodes``, "Several targets…" too (one run over several of them)."""
    try:
        targets = app_context().settings.targets
    except Exception:  # noqa: BLE001 - an unreadable targets file: this computer still works
        training.set_targets(["This computer"])
        return
    names = [t.name for t in targets]
    training.set_targets(names + ([ANY_FREE_TARGET] if len(names) > 1 else []),
                         {t.name for t in targets if t.kind == "local"},
                         {t.name for t in targets if t.kind == "vsphere"})
    if nodes is not None:
        nodes.offer(list(targets))
