"""The `ss_*` and `modelspec.*` metadata of a kohya-format LoRA file (torch-free).

A1111/Forge show these in their LoRA cards; ComfyUI and Civitai read them too. Every
value is a string (safetensors metadata is str -> str); dicts are JSON-encoded.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Iterable

from trainer import __version__


def captions_by_folder(samples: Iterable[Any], default_folder: str) -> dict[str, list[str]]:
    """Captions grouped by their dataset folder (kohya's repeat folder, else ``default_folder``)."""
    grouped: dict[str, list[str]] = {}
    for sample in samples:
        grouped.setdefault(sample.folder or default_folder, []).append(sample.caption)
    return grouped


def tag_frequency(captions_by_folder: dict[str, Iterable[str]]) -> dict[str, dict[str, int]]:
    """Comma-separated tags counted per dataset folder, as kohya's `ss_tag_frequency`."""
    result = {}
    for folder, captions in captions_by_folder.items():
        counts: Counter[str] = Counter()
        for caption in captions:
            counts.update(tag.strip() for tag in caption.split(",") if tag.strip())
        result[folder] = dict(counts.most_common())
    return result


def network_metadata(lora_type: str, use_dora: bool) -> tuple[str, dict[str, str]]:
    """kohya's ``ss_network_module`` for the adapter kind, and the LyCORIS entries of ``ss_network_args``
    (LyCORIS' own names: ``algo``, ``dora_wd``; its ``wd_on_out`` says the magnitude is per output channel)."""
    if lora_type == "lora" and not use_dora:
        return "networks.lora", {}
    args = {"algo": lora_type}
    if use_dora:
        args |= {"dora_wd": "True", "wd_on_out": "True"}
    return "lycoris.kohya", args


def kohya_metadata(*, config: Any, base_model_version: str, architecture: str, prediction_type: str, num_images: int,
                   steps: int,
                   epoch: int, started_at: float, finished_at: float, tag_freq: dict[str, dict[str, int]],
                   base_model_name: str, resolution: tuple[int, int]) -> dict[str, str]:
    """Metadata for the kohya-format file: the `ss_*` training record plus `modelspec.*`."""
    alpha = config.lora_scale_alpha
    iso = datetime.fromtimestamp(finished_at, timezone.utc).isoformat(timespec="seconds")
    network_module, network_args = network_metadata(config.lora_type, config.use_dora)
    metadata = {
        "ss_network_module": network_module,
        "ss_network_dim": str(config.lora_rank),
        "ss_network_alpha": f"{alpha:g}",
        "ss_network_args": json.dumps({**network_args, "lora_target": config.lora_target, "trainer": "lora-studio"}),
        "ss_base_model_version": base_model_version,
        # sd-scripts' flag for v-prediction (its only sign of it for SDXL, whose version string has none).
        "ss_v_parameterization": str(prediction_type == "v_prediction"),
        "ss_sd_model_name": base_model_name,
        "ss_output_name": config.resolved_output_name,
        "ss_num_train_images": str(num_images),
        "ss_steps": str(steps),
        "ss_epoch": str(epoch),
        "ss_learning_rate": f"{config.learning_rate:g}",
        "ss_unet_lr": f"{config.learning_rate:g}",
        "ss_text_encoder_lr": f"{(config.text_encoder_lr or config.learning_rate):g}" if config.train_text_encoder else "0",
        "ss_batch_size_per_device": str(config.batch_size),
        "ss_gradient_accumulation_steps": str(config.gradient_accumulation_steps),
        "ss_optimizer": config.optimizer,
        "ss_lr_scheduler": config.lr_scheduler,
        "ss_lr_warmup_steps": str(config.lr_warmup_steps),
        "ss_mixed_precision": config.mixed_precision,
        "ss_resolution": f"({resolution[0]}, {resolution[1]})",
        "ss_enable_bucket": str(config.enable_bucket),
        "ss_clip_skip": str(config.clip_skip),
        "ss_noise_offset": f"{config.noise_offset:g}",
        "ss_min_snr_gamma": f"{config.min_snr_gamma:g}" if config.min_snr_gamma else "None",
        "ss_seed": str(config.seed),
        "ss_max_train_steps": str(steps),
        "ss_shuffle_caption": str(config.shuffle_caption),
        "ss_keep_tokens": str(config.keep_tokens),
        "ss_caption_dropout_rate": f"{config.caption_dropout_rate:g}",
        "ss_flip_aug": str(config.random_flip),
        "ss_tag_frequency": json.dumps(tag_freq, ensure_ascii=False),
        "ss_training_started_at": f"{started_at:.3f}",
        "ss_training_finished_at": f"{finished_at:.3f}",
        "ss_training_comment": f"trained with LoRA Studio trainer {__version__}",
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": architecture,
        "modelspec.implementation": "diffusers",
        "modelspec.title": config.resolved_output_name,
        "modelspec.resolution": f"{resolution[0]}x{resolution[1]}",
        "modelspec.date": iso,
    }
    if prediction_type in ("epsilon", "v_prediction"):  # flow-matching models (Flux.1) have no such field
        metadata["modelspec.prediction_type"] = "v" if prediction_type == "v_prediction" else "epsilon"
    return metadata


def now() -> float:
    """Unix time (one place, so tests could pin it)."""
    return time.time()
