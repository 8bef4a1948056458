"""The pieces of bench/gpu_train.py that run a step: a setting, the clock, the trainer's recipes set up on
models built in code, and one optimizer step as the loop runs it (bench/gpu_levers.py uses them too)."""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.trainer_throughput import make_dataset

GB = 1e9


@dataclass
class Setting:
    """One measured configuration of a family."""

    name: str
    family: str  # sd, sdxl, flux, llm
    resolution: int  # pixels (images) or tokens per row (llm)
    batch_size: int
    rank: int
    precision: str = "bf16"
    gradient_checkpointing: bool = False
    lora_target: str = "attention_ff"
    quantization_bit: str = "none"  # "8": the denoiser's base weights in int8 (Flux.1 on a 24 GB GPU)
    target: dict[str, float] = field(default_factory=dict)  # {"mfu_min": 0.45} / {"peak_vram_gb_max": 4}
    sample: bool = False  # also render one sample image after the timed steps (its peak: sample_peak_vram_gb)


class Clock:
    """Wall time of GPU work: CUDA is synchronised before reading the clock."""

    def __init__(self, device) -> None:
        import torch

        self.cuda = device.type == "cuda"
        self.torch = torch

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def time(self, step: Callable[[], Any], steps: int, warmup: int) -> float:
        """Seconds per step over ``steps`` steps after ``warmup`` untimed ones."""
        for _ in range(warmup):
            step()
        self.sync()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        self.sync()
        return (time.perf_counter() - start) / steps

    def reset_peak(self) -> None:
        if self.cuda:
            self.sync()
            self.torch.cuda.reset_peak_memory_stats()

    def peak_gb(self) -> float | None:
        return self.torch.cuda.max_memory_allocated() / GB if self.cuda else None


def count_flops(step: Callable[[], Any]) -> int:
    """The FLOPs of one call of ``step`` (matmuls, convolutions, attention; forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------- recipes


def image_config(setting: Setting, data: Path, out: Path, device: str):
    """A validated TrainConfig for an image setting (the base model is built in code, so paths are not checked)."""
    from trainer.config.loader import validate_mapping

    raw = {"base_model": str(out / "random-weights"), "model_family": setting.family, "train_data_dir": str(data),
           "output_dir": str(out), "resolution": setting.resolution, "enable_bucket": False,
           "batch_size": setting.batch_size, "lora_rank": setting.rank, "lora_target": setting.lora_target,
           "mixed_precision": setting.precision, "gradient_checkpointing": setting.gradient_checkpointing,
           "quantization_bit": setting.quantization_bit,
           "cache_latents": "memory", "cache_text_encoder_outputs": True, "num_workers": 2, "save_steps": 0,
           "tensorboard": False, "device": device, "max_train_steps": 1000, "learning_rate": 1e-4}
    if setting.sample:  # encoded with the captions at set-up, as a run's are; rendered once by the bench itself
        raw.update(sample_prompts=["a red square on a blue floor"], sample_every_n_steps=1000, sample_steps=2,
                   sample_width=setting.resolution, sample_height=setting.resolution)
    config, problems = validate_mapping(raw, check_paths=False)
    if config is None:
        raise SystemExit(f"bench config refused: {[str(p) for p in problems]}")
    return config


def build_image_recipe(setting: Setting, tmp: Path, device, quick: bool):
    """The trainer's image recipe for ``setting``, set up on a model built in code (latents and text cached)."""
    import torch

    from trainer.dataset_scan import scan_dataset
    from trainer.models.full_size import build_image_model
    from trainer.recipe import LoRATrainingRecipe
    from trainer.rundir import NullRunWriter

    data = tmp / f"data-{setting.name}"
    make_dataset(data, max(setting.batch_size, 2), setting.resolution)
    config = image_config(setting, data, tmp / f"run-{setting.name}", device.type)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(setting.precision, torch.float32)
    model = build_image_model(setting.family, device=device, dtype=dtype, tiny=quick)

    class BenchRecipe(LoRATrainingRecipe):
        def load_model(self):
            return model

    recipe = BenchRecipe(config, NullRunWriter(config.output_dir), scan_dataset(data, check_images=False).items)
    recipe.setup()
    return recipe


def build_llm_recipe(setting: Setting, tmp: Path, device, quick: bool):
    """The trainer's language-model recipe on a Llama built in code: packed plain-text rows of
    ``setting.resolution`` tokens, so every row is full."""
    import random

    import torch

    from trainer.config.loader import validate_mapping
    from trainer.llm.formats import read_dataset
    from trainer.llm.recipe import LLMRecipe
    from trainer.llm.full_size import build_language_model
    from trainer.rundir import NullRunWriter

    rng = random.Random(0)
    words = "the a red blue sea house night story answer question help good morning small wide".split()
    rows = tmp / f"rows-{setting.name}.jsonl"
    rows.write_text("".join(json.dumps({"text": " ".join(rng.choice(words) for _ in range(300))}) + "\n"
                            for _ in range(max(64, setting.batch_size * 24))), encoding="utf-8")
    raw = {"base_model": str(tmp / "random-llm"), "model_family": "llm", "dataset_path": str(rows),
           "dataset_format": "text", "output_dir": str(tmp / f"run-{setting.name}"), "cutoff_len": setting.resolution,
           "packing": True, "batch_size": setting.batch_size, "lora_rank": setting.rank,
           "lora_target": setting.lora_target, "mixed_precision": setting.precision,
           "gradient_checkpointing": setting.gradient_checkpointing, "save_steps": 0, "tensorboard": False,
           "device": device.type, "max_train_steps": 1000, "learning_rate": 1e-4}
    config, problems = validate_mapping(raw, check_paths=False)
    if config is None:
        raise SystemExit(f"bench config refused: {[str(p) for p in problems]}")
    dtype = torch.bfloat16 if setting.precision == "bf16" else torch.float32
    lm = build_language_model(device=device, dtype=dtype, tiny=quick)

    class BenchRecipe(LLMRecipe):
        def load_model(self):
            return lm

    recipe = BenchRecipe(config, NullRunWriter(config.output_dir), read_dataset(rows, "text"))
    recipe.setup()
    return recipe


class Stepper:
    """One optimizer step of a set-up recipe, as the loop runs it, over its epoch's batches in turn."""

    def __init__(self, recipe, batch_size: int | None = None) -> None:
        self.recipe = recipe
        self.batches = list(recipe.epoch_batches(0))
        if batch_size is not None:  # a smaller batch of the same data (the batch-1 setting)
            self.batches = [batch[:batch_size] for batch in self.batches]
        self.index = 0
        self.last_counts: dict[str, float] = {}
        self.images = None  # an iterator of (batch, images) when latents are not cached

    def close(self) -> None:
        """Stop the image loader's workers (they would compete with the next measurement)."""
        self.images = None
        gc.collect()

    def __call__(self) -> None:
        batch = self.batches[self.index % len(self.batches)]
        self.index += 1
        item = next(self.images) if self.images is not None else (batch, None) if self.is_image else batch
        _loss, self.last_counts = self.recipe.micro_step(item)
        self.recipe.optimizer_step()

    @property
    def is_image(self) -> bool:
        return hasattr(self.recipe, "latents")



def round_or_none(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
