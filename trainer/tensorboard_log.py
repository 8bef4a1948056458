"""TensorBoard event files in the run folder (`tb/`), when tensorboard is installed."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("trainer")


def tensorboard_writer(folder: Path):
    """A SummaryWriter into ``folder``, or None (with a warning) without the tensorboard package."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional on training machines
        log.warning("tensorboard is not installed: no tb/ event files")
        return None
    return SummaryWriter(log_dir=str(folder))
