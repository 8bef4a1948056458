"""Keep the libraries' messages that do not concern a run out of the console and ``train.log``.

A run's log is where a user looks when something goes wrong, and the app shows it. Some
libraries print lines while they are imported that read like failures but are about parts the
trainer never uses: torchao's optional compiled kernels, a loader for torchao-serialised
checkpoints, torchvision-based image processors. A user who sees "Failed to load …" above the
first step asks what is broken. Each filter here drops one known message from the one logger that
sends it, so every other warning of those libraries still reaches the log.

This module is stdlib-only: :func:`quiet_library_noise` must run before torch is imported.
"""

from __future__ import annotations

import logging

# (logger, part of the message): each message and why it says nothing about a LoRA Studio run.
HARMLESS_MESSAGES: tuple[tuple[str, str], ...] = (
    # torchao's MX-FP8 and Hopper CUTLASS kernels, built for another Python or GPU; the 8-bit
    # weights (trainer/quantize.py) use torchao's PyTorch code, which needs neither.
    ("torchao", "Failed to load "),
    # torchao registers its enums with torch.compile the way older torch versions wanted.
    ("torch.utils._pytree", "is an Enum subclass and is now natively supported"),
    # diffusers' loader for torchao-serialised checkpoints, which the trainer never reads.
    ("diffusers.quantizers.torchao.torchao_quantizer", "Unable to import `torchao` Tensor objects"),
    # The sampling pipelines name CLIP's image processor (for a safety checker the trainer does not
    # load); the PIL one it falls back on is the one that was always used.
    ("transformers.utils.import_utils", "requires torchvision (not installed); falling back to"),
)


class _DropMessage(logging.Filter):
    """Drops the records whose message contains ``part``."""

    def __init__(self, part: str) -> None:
        super().__init__()
        self.part = part

    def filter(self, record: logging.LogRecord) -> bool:
        return self.part not in record.getMessage()


def quiet_library_noise() -> None:
    """Install the filters of :data:`HARMLESS_MESSAGES` (once per process; later calls do nothing)."""
    for logger_name, part in HARMLESS_MESSAGES:
        logger = logging.getLogger(logger_name)
        if not any(isinstance(f, _DropMessage) and f.part == part for f in logger.filters):
            logger.addFilter(_DropMessage(part))
