"""The weights a user gets, which are not always the ones being trained.

With ``ema_decay`` they are the moving average (:mod:`trainer.ema`); with a schedule-free
optimizer they are its averaged point, which it trains beside. The export, each checkpoint's
LoRA file and the samples all see these weights; the training goes on with the others.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from trainer.ema import EmaWeights


def set_optimizer_mode(optimizer: Any, training: bool) -> None:
    """Schedule-free optimizers keep two points: they train on one and are used at the other."""
    switch = getattr(optimizer, "train" if training else "eval", None)
    if callable(switch):
        switch()


@contextmanager
def exported_weights(params: Sequence[torch.nn.Parameter], optimizer: Any, ema: EmaWeights | None) -> Iterator[None]:
    """The exported weights in place of the trained ones for the duration of the block."""
    # Switching a schedule-free optimizer there and back is not exact in floating point: the
    # training weights are put back as they were, so a resumed run still matches.
    saved = [p.detach().clone() for p in params] if callable(getattr(optimizer, "eval", None)) else None
    set_optimizer_mode(optimizer, False)
    try:
        if ema is None:
            yield
        else:
            with ema.applied():
                yield
    finally:
        set_optimizer_mode(optimizer, True)
        if saved is not None:
            with torch.no_grad():
                for param, value in zip(params, saved):
                    param.copy_(value)
