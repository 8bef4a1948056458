"""The LoRA files a run writes: kohya-format with its `ss_*`/`modelspec.*` metadata, and diffusers-format.

Names come from the model's family (:meth:`trainer.models.family.DiffusionModel.kohya_name`
and ``diffusers_name``); the metadata from the run's config and data. Every write is atomic.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from trainer.lora import AdapterStates, lora_state_dict, save_safetensors, to_diffusers
from trainer.lora_metadata import captions_by_folder, kohya_metadata, tag_frequency
from trainer.rundir import DIFFUSERS_LORA

SAVE_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


class LoraFiles:
    """Writes one run's LoRA files for ``model`` (a family's DiffusionModel) under ``config``."""

    def __init__(self, model: Any, config: Any, samples: list, started_at: float) -> None:
        self.model = model
        self.config = config
        self.samples = samples
        self.started_at = started_at
        self.dtype = SAVE_DTYPES[config.save_precision]

    def states(self, components) -> AdapterStates:
        """The LoRA weights (peft layout) of each adapted component, in the order given (the UNet first)."""
        return {name: lora_state_dict(self.model.component(name)) for name in components}

    def write_kohya(self, path: Path, states: AdapterStates, steps: int, epoch: int) -> None:
        """The kohya-format file at ``path``, with the metadata of a run ``steps`` steps in."""
        cfg = self.config
        save_safetensors(path, self.model.kohya_weights(states, cfg.lora_scale_alpha, self.dtype, cfg.lora_rank),
                         self._metadata(steps, epoch))

    def loader_notes(self) -> list[str]:
        """What a user of this run's files must know about the programs that load them (variants only)."""
        cfg = self.config
        if cfg.lora_type != "lora":
            return [f"diffusers' load_lora_weights does not load {cfg.lora_type} adapters: this run writes no "
                    "diffusers-format file; the .safetensors file loads in ComfyUI, Forge and AUTOMATIC1111"]
        if cfg.use_dora:
            return ["DoRA's magnitude is per output channel (peft's; dora_scale [out, 1]): ComfyUI and Forge apply it "
                    "(normalising by the base weight's rows, which differs from peft by about the LoRA's relative "
                    "size); diffusers loads DoRA from diffusers/pytorch_lora_weights.safetensors (it drops "
                    "dora_scale from kohya files); AUTOMATIC1111's built-in Lora extension normalises along the "
                    "input channels only and would change the LoRA's effect"]
        return []

    def write_diffusers(self, root: Path, states: AdapterStates) -> Path | None:
        """``root/diffusers/pytorch_lora_weights.safetensors``, as diffusers' ``load_lora_weights`` reads it
        (None for LoHa and LoKr, which diffusers cannot load)."""
        cfg = self.config
        if cfg.lora_type != "lora":
            return None
        path = root / DIFFUSERS_LORA
        save_safetensors(path, to_diffusers(states, self.model.diffusers_name, cfg.lora_rank, cfg.lora_scale_alpha,
                                            self.dtype), {"format": "pt"})
        return path

    def _metadata(self, steps: int, epoch: int) -> dict[str, str]:
        cfg = self.config
        by_folder = captions_by_folder(self.samples, Path(cfg.train_data_dir).name)
        return kohya_metadata(config=cfg, base_model_version=self.model.base_model_version,
                              architecture=self.model.modelspec_architecture,
                              prediction_type=self.model.prediction_type, num_images=len(self.samples),
                              steps=steps, epoch=epoch, started_at=self.started_at, finished_at=time.time(),
                              tag_freq=tag_frequency(by_folder), base_model_name=Path(cfg.base_model).name,
                              resolution=(cfg.resolution, cfg.resolution))
