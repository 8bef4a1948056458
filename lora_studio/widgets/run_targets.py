"""The training page's "Run on" choices: this computer, every saved target, and any free one of them."""

from __future__ import annotations

from ..targets_ui.store import app_context
from ..training.page import TrainingPage

# With two targets or more: Start takes the first free one that fits, or queues the run for any of them.
ANY_FREE_TARGET = "Any free target"


def offer_targets(training: TrainingPage) -> None:
    """Fill ``training``'s target list from the saved targets (read again: the Targets panel may have changed them)."""
    try:
        targets = app_context().settings.targets
    except Exception:  # noqa: BLE001 - an unreadable targets file: this computer still works
        training.set_targets(["This computer"])
        return
    names = [t.name for t in targets]
    training.set_targets(names + ([ANY_FREE_TARGET] if len(names) > 1 else []),
                         {t.name for t in targets if t.kind == "local"},
                         {t.name for t in targets if t.kind == "vsphere"})
