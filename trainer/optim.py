"""Optimizers and learning-rate schedules named by the config."""

from __future__ import annotations

import importlib.util
from typing import Any

import torch
from diffusers.optimization import get_scheduler

from trainer.problems import ExplainedError
from trainer.speed import adamw_implementation


class OptimizerUnavailable(ExplainedError):
    """The chosen optimizer needs a package (or hardware) this machine lacks."""


def _require(package: str, optimizer: str) -> None:
    if importlib.util.find_spec(package) is None:
        raise OptimizerUnavailable(f"optimizer {optimizer} needs the {package} package, which is not installed",
                                   f"pip install {package} on the training machine, or use optimizer: AdamW")


def make_optimizer(name: str, param_groups: list[dict[str, Any]], lr: float, weight_decay: float, *,
                   device: torch.device | None = None, warmup_steps: int = 0) -> torch.optim.Optimizer:
    """The optimizer for the LoRA parameter groups (each group may carry its own `lr`) on ``device``
    (the training device: CUDA gets fused AdamW, 8-bit AdamW needs it). ``warmup_steps`` is for
    the schedule-free optimizer, which warms up by itself."""
    device = device or torch.device("cpu")
    if name == "AdamW":
        return torch.optim.AdamW(param_groups, lr=lr, weight_decay=weight_decay, **adamw_implementation(device))
    if name == "SGD":
        return torch.optim.SGD(param_groups, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "Adafactor":
        from transformers.optimization import Adafactor
        # Fixed learning rate: the config's scheduler drives it, not Adafactor's own.
        return Adafactor(param_groups, lr=lr, weight_decay=weight_decay, scale_parameter=False,
                         relative_step=False, warmup_init=False)
    if name == "AdamW8bit":
        _require("bitsandbytes", name)
        if device.type != "cuda":
            raise OptimizerUnavailable("optimizer AdamW8bit needs a CUDA GPU, and this run trains on the "
                                       f"{device.type.upper()}", "use optimizer: AdamW on this machine")
        import bitsandbytes as bnb
        return bnb.optim.AdamW8bit(param_groups, lr=lr, weight_decay=weight_decay)
    if name == "Prodigy":
        _require("prodigyopt", name)
        from prodigyopt import Prodigy
        return Prodigy(param_groups, lr=lr, weight_decay=weight_decay)
    if name == "AdamWScheduleFree":
        _require("schedulefree", name)
        from schedulefree import AdamWScheduleFree
        return AdamWScheduleFree(param_groups, lr=lr, weight_decay=weight_decay, warmup_steps=warmup_steps)
    raise OptimizerUnavailable(f"unknown optimizer {name!r}", "see `python -m trainer schema` for the choices")


def make_scheduler(name: str, optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                   num_cycles: int, power: float) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning-rate schedule over ``total_steps`` optimizer steps."""
    return get_scheduler(name, optimizer, num_warmup_steps=warmup_steps, num_training_steps=total_steps,
                         num_cycles=num_cycles, power=power)
