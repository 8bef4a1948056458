"""Optimizers and learning-rate schedules named by the config."""

from __future__ import annotations

import importlib.util
from typing import Any

import torch
from diffusers.optimization import get_scheduler

from trainer.problems import ExplainedError


class OptimizerUnavailable(ExplainedError):
    """The chosen optimizer needs a package (or hardware) this machine lacks."""


def make_optimizer(name: str, param_groups: list[dict[str, Any]], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """The optimizer for the LoRA parameter groups (each group may carry its own `lr`)."""
    if name == "AdamW":
        # One batched update for the hundreds of small LoRA tensors: PyTorch picks that on
        # GPUs by itself, not on a CPU, where the per-tensor loop cost 7% of a 64 px step.
        return torch.optim.AdamW(param_groups, lr=lr, weight_decay=weight_decay, foreach=True)
    if name == "SGD":
        return torch.optim.SGD(param_groups, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "Adafactor":
        from transformers.optimization import Adafactor
        # Fixed learning rate: the config's scheduler drives it, not Adafactor's own.
        return Adafactor(param_groups, lr=lr, weight_decay=weight_decay, scale_parameter=False,
                         relative_step=False, warmup_init=False)
    if name == "AdamW8bit":
        if importlib.util.find_spec("bitsandbytes") is None:
            raise OptimizerUnavailable("optimizer AdamW8bit needs the bitsandbytes package, which is not installed",
                                       "pip install bitsandbytes on the training machine, or use optimizer: AdamW")
        if not torch.cuda.is_available():
            raise OptimizerUnavailable("optimizer AdamW8bit needs a CUDA GPU", "use optimizer: AdamW on this machine")
        import bitsandbytes as bnb
        return bnb.optim.AdamW8bit(param_groups, lr=lr, weight_decay=weight_decay)
    if name == "Prodigy":
        if importlib.util.find_spec("prodigyopt") is None:
            raise OptimizerUnavailable("optimizer Prodigy needs the prodigyopt package, which is not installed",
                                       "pip install prodigyopt on the training machine, or use optimizer: AdamW")
        from prodigyopt import Prodigy
        return Prodigy(param_groups, lr=lr, weight_decay=weight_decay)
    raise OptimizerUnavailable(f"unknown optimizer {name!r}", "see `python -m trainer schema` for the choices")


def make_scheduler(name: str, optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                   num_cycles: int, power: float) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning-rate schedule over ``total_steps`` optimizer steps."""
    return get_scheduler(name, optimizer, num_warmup_steps=warmup_steps, num_training_steps=total_steps,
                         num_cycles=num_cycles, power=power)
