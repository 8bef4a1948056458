"""Figures a user wants before starting: steps, and roughly how much GPU memory (torch-free).

The step count uses the same buckets and batching as the trainer, so it is exact. The memory
figure is an estimate: weights + LoRA training state + activations, with constants taken
from public reports of kohya's sd-scripts on SD 1.5 (about 6 GB at 512 px, batch 1, fp16
without gradient checkpointing, about 4 GB with it). It has not yet been calibrated against
this trainer on a GPU; treat it as +-30%.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from trainer.buckets import assign_bucket, buckets_for, count_batches, plan_steps
from trainer.images import ImageProblem, image_size

# Parameters of the frozen parts (UNet, text encoder, VAE), in millions.
_PARAMS_M = {"sd1": {"unet": 860, "text_encoder": 123, "vae": 84}, "sd2": {"unet": 866, "text_encoder": 340, "vae": 84}}
# Trainable LoRA parameters per unit of rank, in millions (SD 1.5 layer sizes).
_LORA_PARAMS_PER_RANK_M = {"attention": 0.20, "attention_ff": 0.40, "all": 0.85}
_ACTIVATIONS_GB_AT_512 = 3.0  # batch 1, fp16/bf16, no gradient checkpointing
_CHECKPOINTING_FACTOR = 0.35
_CUDA_CONTEXT_GB = 0.6


@dataclass
class RunFigures:
    """What one run will do."""

    images: int
    images_with_repeats: int
    buckets: int
    batches_per_epoch: int
    steps_per_epoch: int
    total_steps: int
    epochs: int
    unreadable: list[str] = field(default_factory=list)


def run_figures(config: Any, items: Iterable[Any], world_size: int = 1) -> RunFigures:
    """Steps per epoch and in all, exactly as the trainer will count them (reads image headers).

    ``world_size``: the processes of a multi-GPU run (each trains on its own batches).
    """
    buckets = buckets_for(config)
    counts: Counter = Counter()
    images = 0
    unreadable = []
    for item in items:
        try:
            width, height = image_size(item.image_path)
        except ImageProblem:
            unreadable.append(str(item.image_path))
            continue
        images += 1
        counts[assign_bucket(width, height, buckets)] += item.repeats
    batches = count_batches(counts, config.batch_size)
    plan = plan_steps(batches, config.gradient_accumulation_steps, world_size, config.epochs, config.max_train_steps)
    return RunFigures(images, sum(counts.values()), len(counts), batches, plan.steps_per_epoch, plan.total_steps,
                      plan.epochs, unreadable)


@dataclass
class MemoryEstimate:
    """Estimated peak GPU memory in GiB, and what it is made of."""

    total_gb: float
    parts: dict[str, float]


def estimate_memory(config: Any, family: str = "sd1") -> MemoryEstimate:
    """Peak GPU memory of a run from its config (see the module docstring for the basis)."""
    params = _PARAMS_M.get(family, _PARAMS_M["sd1"])
    half = config.mixed_precision in ("fp16", "bf16", "auto")
    weight_bytes = 2 if half else 4
    te_trained = config.train_text_encoder
    frozen = params["unet"] * weight_bytes + params["text_encoder"] * (4 if te_trained else weight_bytes)
    frozen += params["vae"] * 4  # the VAE stays fp32 (it overflows in fp16)
    lora = _LORA_PARAMS_PER_RANK_M[config.lora_target] * config.lora_rank * (1.6 if te_trained else 1.0)
    optimizer_bytes = {"AdamW": 8, "AdamW8bit": 2, "Adafactor": 4, "SGD": 4, "Prodigy": 16}.get(config.optimizer, 8)
    lora_state = lora * (4 + 4 + optimizer_bytes)  # weights, gradients, optimizer state
    scale = (config.resolution / 512) ** 2 * config.batch_size * (1.0 if half else 1.8)
    activations = _ACTIVATIONS_GB_AT_512 * scale * (_CHECKPOINTING_FACTOR if config.gradient_checkpointing else 1.0)
    if te_trained:
        activations += 0.3 * config.batch_size
    parts = {"model weights": frozen / 1024, "LoRA training state": lora_state / 1024,
             "activations": activations, "CUDA context": _CUDA_CONTEXT_GB}
    return MemoryEstimate(round(sum(parts.values()), 1), {k: round(v, 2) for k, v in parts.items()})
