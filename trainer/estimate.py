"""Figures a user wants before starting: steps, and roughly how much GPU memory (torch-free).

The step count uses the same buckets and batching as the trainer, so it is exact. The memory
figure is an estimate: weights + LoRA training state + activations, with each family's
constants (:class:`trainer.model_family.FamilySpec`: parameter counts, LoRA size per rank,
activations at its usual resolution) taken from public reports of kohya's sd-scripts, which
the family's ``memory.source`` names; given the base model, the parameters of its parts are
counted from its files' headers instead (:mod:`trainer.model_size`), and the LoRA and activations
scale with its denoiser. It has not yet been calibrated against this trainer on a GPU; treat it
as +-30%.

The weights counted are those on the GPU while training: the trainer moves frozen parts whose
work is cached to host memory (the VAE with cached latents, the frozen text encoders with
cached outputs: :func:`trainer.speed.offloadable_parts`), and fills those caches before the
denoiser comes onto the GPU. Samples bring them back, beside the denoiser and the LoRA.
Each estimate also lists what the memory levers give (:class:`MemoryLever`): bf16, then
gradient checkpointing, then the family's fewer-bit base weights, so the form can say which
combination fits which GPU.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

from trainer.buckets import assign_bucket, buckets_for, count_batches, plan_steps
from trainer.images import ImageProblem, image_size
from trainer.model_family import FAMILIES_BY_ID, LLM, SD, FamilySpec, MemoryFigures
from trainer.model_size import parts_params_m
from trainer.wording import listed

_CHECKPOINTING_FACTOR = 0.35
_MB_PER_GIB = 2 ** 30 / 1e6  # the families' parameter counts are in millions, so their bytes in MB
_CUDA_CONTEXT_GB = 0.6
_OPTIMIZER_STATE_BYTES = {"AdamW": 8, "AdamW8bit": 2, "Adafactor": 4, "SGD": 4, "Prodigy": 16}


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
    unit: str = "images"  # what the run trains on: "images", or "examples" for a language model


def text_run_figures(config: Any, examples: int, world_size: int = 1) -> RunFigures:
    """Steps of a language-model run over ``examples`` (those held out by ``val_size`` left out)."""
    from trainer.llm.tokenize import held_out_count  # torch-free; the trainer splits by the same rule

    rows = max(0, examples - held_out_count(examples, config.val_size))
    batches = math.ceil(rows / config.batch_size)
    plan = plan_steps(batches, config.gradient_accumulation_steps, world_size, config.epochs, config.max_train_steps)
    return RunFigures(rows, rows, 0, batches, plan.steps_per_epoch, plan.total_steps, plan.epochs, unit="examples")


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


@dataclass(frozen=True)
class MemoryLever:
    """One row of "which settings fit which GPU": the run's settings with the levers up to this one on."""

    label: str  # "bf16", "+ gradient checkpointing", "+ 8-bit base weights"
    total_gb: float
    current: bool = False  # the run's own settings are this row's


@dataclass
class MemoryEstimate:
    """Estimated peak GPU memory in GiB, what it is made of, and where the constants come from."""

    total_gb: float
    parts: dict[str, float]
    source: str = ""
    # The same run with bf16, then gradient checkpointing, then fewer-bit base weights (where the family has them).
    levers: tuple[MemoryLever, ...] = ()


# `quantization_bit` values as the levers' rows name them.
_BITS_LABELS = {"8": "8-bit base weights", "4": "4-bit base weights (QLoRA)"}
SAMPLES_PART = "samples (the VAE back on the GPU)"


def memory_levers(config: Any, spec: FamilySpec, estimate: Callable[[Any], MemoryEstimate]) -> tuple[MemoryLever, ...]:
    """``estimate`` of ``config`` with the memory levers turned on one after the other, from bf16 with
    none; the row equal to the run's own settings is marked."""
    steps: list[tuple[str, dict[str, Any]]] = [
        ("bf16", {"mixed_precision": "bf16", "gradient_checkpointing": False, "quantization_bit": "none"}),
        ("+ gradient checkpointing", {"gradient_checkpointing": True})]
    steps += [(f"+ {_BITS_LABELS[bits]}", {"quantization_bit": bits}) for bits in spec.quantization_bits]
    half = config.mixed_precision in ("fp16", "bf16", "auto")
    values: dict[str, Any] = {}
    rows = []
    for label, change in steps:
        values.update(change)
        current = half and all(config[k] == v for k, v in values.items() if k != "mixed_precision")
        rows.append(MemoryLever(label, estimate(config.replace(**values)).total_gb, current))
    return tuple(rows)


def estimate_memory(config: Any, family: str = "sd", variant: str = "",
                    model: Path | str | None = None) -> MemoryEstimate:
    """Peak GPU memory of a run from its config, with ``family``'s constants (see the module docstring);
    ``variant`` (a Detection's) picks a variant's sizes where the family has several (SD3 Medium, SD3.5 Large).
    ``model``: the base model, whose parts' parameters are counted from its headers where they can be
    (:mod:`trainer.model_size`) instead of taken from the family's full-size figures."""
    spec = FAMILIES_BY_ID.get(family, SD)
    memory = _measured(spec.memory_of(variant), model)
    estimate = _image_memory(config, spec, memory)
    return replace(estimate, levers=memory_levers(config, spec, lambda changed: _image_memory(changed, spec, memory)))


# A denoiser counted within this share of the family's full size is the family's own: its figures stand.
_SAME_SIZE = (0.95, 1.05)
_PART_NAMES = {"text_encoder": "text encoder", "text_encoder_2": "second text encoder",
               "text_encoder_3": "third text encoder", "vae": "VAE"}


def _measured(memory: MemoryFigures, model: Path | str | None) -> MemoryFigures:
    """The family's figures with the parts counted in ``model``'s files in place of its full-size counts."""
    counted = {part: count for part, count in (parts_params_m(model) if model else {}).items() if part in memory.params_m}
    if not counted:
        return memory
    parts = listed([_PART_NAMES.get(part, part) for part in memory.params_m if part in counted])
    source = f"weights of the {parts} counted in {Path(model).name}"
    # What grows with the denoiser scales with it: its fewer-bit share, the LoRA on its layers and the
    # activations. A distilled model (SSD-1B, BK-SDM) drops blocks, so these shrink with its
    # parameters; a narrower one keeps more activations than this says.
    ratio = counted.get("denoiser", memory.params_m["denoiser"]) / memory.params_m["denoiser"]
    if _SAME_SIZE[0] <= ratio <= _SAME_SIZE[1]:
        ratio = 1.0  # the family's own denoiser
    else:
        source += f"; its LoRA and activations scaled with its denoiser ({_share(ratio)} of the family's)"
    return replace(memory, params_m={**memory.params_m, **counted}, quantized_m=memory.quantized_m * ratio,
                   lora_params_per_rank_m={k: v * ratio for k, v in memory.lora_params_per_rank_m.items()},
                   activations_gb=memory.activations_gb * ratio, source=f"{source}; the rest from {memory.source}")


def _share(ratio: float) -> str:
    """``52%``, or ``0.03%`` for a tiny model (a percentage that never reads 0%)."""
    return f"{ratio:.0%}" if ratio >= 0.01 else f"{ratio * 100:.2g}%"


def trained_encoders(config: Any, spec: FamilySpec) -> set[str]:
    """The text encoders a run trains (the families' ``text_encoder_lrs``, torch-free): all of them with
    `train_text_encoder`, SDXL's second as `train_text_encoder_2` says; Flux.1's T5 never."""
    names = {k for k in spec.memory.params_m if k.startswith("text_encoder")} - set(spec.frozen_encoders)
    first = config.train_text_encoder
    if "train_text_encoder_2" not in spec.own_options:
        return names if first else set()
    second = config.train_text_encoder_2 == "true" or (config.train_text_encoder_2 == "same" and first)
    return {name for name in names if (second if name == "text_encoder_2" else first)}


def _image_memory(config: Any, spec: FamilySpec, memory: MemoryFigures) -> MemoryEstimate:
    """One image run's estimate (no levers): the parts on the GPU while training, then while sampling."""
    params = memory.params_m
    half = config.mixed_precision in ("fp16", "bf16", "auto")
    weight_bytes = 2 if half else 4
    trained = trained_encoders(config, spec)
    denoiser = params["denoiser"] * weight_bytes
    quantized = memory.quantized_m if config.quantization_bit in spec.quantization_bits else 0.0
    if quantized:  # one byte each (plus one scale per row: a few MB); the rest stays in the run's dtype
        denoiser = quantized + (params["denoiser"] - quantized) * weight_bytes
    encoders = sum(v * (4 if k in trained else weight_bytes) for k, v in params.items() if k.startswith("text_encoder"))
    vae = params["vae"] * 4  # the VAE stays fp32 (it overflows in fp16)
    # What the trainer moves to host memory once its outputs are cached (the recipe's rules).
    prompts_cached = config.cache_text_encoder_outputs and not trained and not config.shuffle_caption
    latents_cached = config.cache_latents != "off"
    offloaded = (encoders if prompts_cached else 0.0) + (vae if latents_cached else 0.0)
    frozen = denoiser + encoders + vae - offloaded
    lora = memory.lora_params_per_rank_m[config.lora_target] * config.lora_rank * (1.6 if trained else 1.0)
    lora_state = lora * (4 + 4 + _OPTIMIZER_STATE_BYTES.get(config.optimizer, 8))  # weights, gradients, optimizer
    scale = (config.resolution / spec.default_resolution) ** 2 * config.batch_size * (1.0 if half else 1.8)
    activations = memory.activations_gb * scale * (_CHECKPOINTING_FACTOR if config.gradient_checkpointing else 1.0)
    activations += 0.3 * config.batch_size * len(trained)
    parts = {"model weights": frozen / _MB_PER_GIB, "LoRA training state": lora_state / _MB_PER_GIB,
             "activations": activations, "CUDA context": _CUDA_CONTEXT_GB}
    if config.sample_prompts and config.sample_every_n_steps and latents_cached:
        # While sampling the training activations are gone and the VAE is back (at least that: the sampler's
        # own activations come on top). The encoders stay in host memory: the recipe encoded the sample
        # prompts with the captions.
        parts[SAMPLES_PART] = max(0.0, vae / _MB_PER_GIB - activations)
    return MemoryEstimate(round(sum(parts.values()), 1), {k: round(v, 2) for k, v in parts.items()},
                          f"{spec.label}: {memory.source}")


# Bytes per parameter of 4-bit NF4 weights with double-quantised scales (bitsandbytes' QLoRA).
_NF4_BYTES = 0.52
# Activations kept per token and layer in half precision: 34 x width bytes (Korthikanti et al.,
# "Reducing Activation Recomputation", with memory-efficient attention); with gradient
# checkpointing only each layer's input (2 x width bytes) plus one layer's full set.
_ACTIVATION_BYTES_PER_WIDTH = 34


def estimate_llm_memory(config: Any, model: Mapping[str, Any]) -> MemoryEstimate:
    """Peak GPU memory of a language-model LoRA run from its config and the model's ``config.json``."""
    estimate = _llm_memory(config, model)
    return replace(estimate, levers=memory_levers(config, LLM, lambda variant: _llm_memory(variant, model)))


def _llm_memory(config: Any, model: Mapping[str, Any]) -> MemoryEstimate:
    """One language-model run's estimate (no levers)."""
    width, layers = int(model.get("hidden_size", 4096)), int(model.get("num_hidden_layers", 32))
    heads = int(model.get("num_attention_heads", 32))
    kv_heads = int(model.get("num_key_value_heads") or heads)
    head_dim = int(model.get("head_dim") or width // heads)
    inner, vocab = int(model.get("intermediate_size", 4 * width)), int(model.get("vocab_size", 32000))
    q, kv = heads * head_dim, kv_heads * head_dim
    attention = 2 * width * q + 2 * width * kv
    mlp = 3 * width * inner
    embeddings = vocab * width * (1 if model.get("tie_word_embeddings") else 2)
    four_bit = config.quantization_bit == "4"
    half = config.mixed_precision in ("fp16", "bf16", "auto")
    # In 4 bits only the blocks' linear layers are quantised; embeddings and head stay in bf16.
    weights = layers * (attention + mlp) * (_NF4_BYTES if four_bit else (2 if half else 4))
    weights += embeddings * (2 if half or four_bit else 4)
    rank = config.lora_rank
    lora_attention = rank * ((width + q) * 2 + (width + kv) * 2)
    lora_mlp = rank * 3 * (width + inner)
    lora = layers * (lora_attention + (lora_mlp if config.lora_target != "attention" else 0))
    lora_state = lora * (4 + 4 + _OPTIMIZER_STATE_BYTES.get(config.optimizer, 8))
    tokens = config.batch_size * config.cutoff_len
    per_layer = tokens * _ACTIVATION_BYTES_PER_WIDTH * width * (1 if half or four_bit else 2)
    activations = (layers * tokens * 2 * width * 2 + per_layer) if config.gradient_checkpointing else layers * per_layer
    logits = tokens * vocab * 4 * 2  # fp32 logits and their gradient for the loss
    gib = 2 ** 30
    parts = {"model weights": weights / gib, "LoRA training state": lora_state / gib,
             "activations": (activations + logits) / gib, "CUDA context": _CUDA_CONTEXT_GB}
    params = layers * (attention + mlp) + embeddings
    count = f"{params / 1e9:.1f}B" if params >= 1e9 else f"{params / 1e6:.1f}M"
    source = (f"{count} parameters from the model's config.json, {'4-bit' if four_bit else 'bf16'} weights; "
              "activations after Korthikanti et al. (34 x width bytes per token and layer)")
    return MemoryEstimate(round(sum(parts.values()), 1), {k: round(v, 2) for k, v in parts.items()}, source)
