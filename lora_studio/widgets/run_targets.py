"""The training page's "Run on" choices: this computer and every saved target."""

from __future__ import annotations

from ..targets_ui.store import app_context
from ..training.page import TrainingPage


def offer_targets(training: TrainingPage) -> None:
    """Fill ``training``'s target list from the saved targets (read again: the Targets panel may have changed them)."""
    try:
        targets = app_context().settings.targets
    except Exception:  # noqa: BLE001 - an unreadable targets file: this computer still works
        training.set_targets(["This computer"])
        return
    training.set_targets([t.name for t in targets], {t.name for t in targets if t.kind == "local"})
