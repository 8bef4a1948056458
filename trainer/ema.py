"""An exponential moving average of the trained adapter weights (``ema_decay``).

The average is what the run exports (and samples with): it smooths the last steps' noise out of
the LoRA. Its tensors are fp32 copies beside the weights, saved in every checkpoint so that a
resumed run continues the same average bit for bit.

The decay warms up as diffusers' ``EMAModel`` does, ``min(ema_decay, (1 + step) / (10 + step))``:
without that, a short run's average would stay close to the adapter's starting point (a no-op).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch


class EmaWeights:
    """The moving average of ``params`` (the tensors the optimizer trains)."""

    def __init__(self, params: Sequence[torch.nn.Parameter], decay: float) -> None:
        self.params = list(params)
        self.decay = decay
        self.average = [p.detach().float().clone() for p in self.params]

    def decay_at(self, step: int) -> float:
        """The decay used by the update after optimizer step ``step`` (1-based)."""
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Move the average towards the weights after optimizer step ``step``."""
        torch._foreach_lerp_(self.average, [p.detach().float() for p in self.params], 1 - self.decay_at(step))

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps."""
        return {"decay": self.decay, "average": self.average}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the average a checkpoint saved."""
        if len(state["average"]) != len(self.average):
            raise ValueError(f"the checkpoint's average has {len(state['average'])} tensors, the adapter "
                             f"{len(self.average)}")
        self.average = [t.float().clone() for t in state["average"]]

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The average in place of the weights for the duration (to export or sample), then the weights back."""
        with torch.no_grad():
            saved = [p.detach().clone() for p in self.params]
            for param, average in zip(self.params, self.average):
                param.copy_(average)
        try:
            yield
        finally:
            with torch.no_grad():
                for param, value in zip(self.params, saved):
                    param.copy_(value)
