"""Reading an original LDM (CompVis) single-file checkpoint: its key layout, pickles refused
unless allowed, and files that are not an SD 1.x/2.x base model (a LoRA, a VAE, SDXL...)
named for what they are before any tensor is loaded. Turning the weights into models is
:mod:`trainer.models.ldm_single_file`'s.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import ModelLoadError

Tensor = torch.Tensor

SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."
OPEN_CLIP_PREFIX = "cond_stage_model.model."
_WANTED_PREFIXES = (UNET_PREFIX, VAE_PREFIX, CLIP_PREFIX, OPEN_CLIP_PREFIX)


PICKLE_MESSAGE = "{path} is a pickle file ({suffix}); loading a pickle file can run arbitrary code."
PICKLE_HINT = (
    "Convert it to .safetensors (for example with A1111's or kohya's converter), or set "
    "`allow_pickle: true` in the config if you trust where the file came from."
)


@dataclass
class LdmCheckpoint:
    """The raw contents of a single-file checkpoint: its SD weights and its metadata."""

    path: Path
    state_dict: dict[str, Tensor]
    metadata: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- reading


def read_checkpoint(path: Path, *, allow_pickle: bool = False) -> LdmCheckpoint:
    """Read a single-file checkpoint's SD weights, refusing pickles unless allowed.

    Only the UNet/VAE/text-encoder tensors are loaded (EMA copies and the like are
    skipped). Raises :class:`ModelLoadError` for pickles without ``allow_pickle``, for
    unreadable files, and for files that are not an SD 1.x/2.x base model.
    """
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        return _read_safetensors(path)
    if suffix in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise ModelLoadError(PICKLE_MESSAGE.format(path=path, suffix=suffix), PICKLE_HINT)
        return _read_pickle(path)
    raise ModelLoadError(
        f"{path}: unsupported model file type {suffix or '(no extension)'!r}.",
        "Give a .safetensors checkpoint or a diffusers model folder (one with model_index.json).",
    )


def _read_safetensors(path: Path) -> LdmCheckpoint:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            keys = list(handle.keys())
            metadata = dict(handle.metadata() or {})
            # Classify from the key names first: refusing a LoRA should not load it.
            check_checkpoint_keys(keys, path)
            state = {k: handle.get_tensor(k) for k in keys if k.startswith(_WANTED_PREFIXES)}
    except ModelLoadError:
        raise
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise ModelLoadError(
            f"{path} could not be read as a safetensors file: {exc}",
            "The file may be incomplete (an interrupted download?) or not a model at all.",
        ) from exc
    return LdmCheckpoint(path, state, metadata)


def _read_pickle(path: Path) -> LdmCheckpoint:
    try:
        # weights_only=False is the point of allow_pickle: old .ckpt files hold
        # PyTorch Lightning objects that the safe unpickler rejects.
        loaded = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ModelLoadError(f"{path} could not be loaded: {exc}", "The file may be incomplete.") from exc
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping):
        raise ModelLoadError(f"{path} does not contain a state dict (found {type(loaded).__name__}).")
    keys = [k for k, v in loaded.items() if isinstance(k, str) and isinstance(v, Tensor)]
    check_checkpoint_keys(keys, path)
    state = {k: loaded[k] for k in keys if k.startswith(_WANTED_PREFIXES)}
    return LdmCheckpoint(path, state, {})


# kohya (lora_unet_*, .lora_down), PEFT (lora_A/lora_B), old diffusers (to_k_lora.down),
# LyCORIS (hada_w*, lokr_w*, oft_*): no SD base model has such names.
_LORA_MARKERS = re.compile(r"lora|hada_w|lokr_w|\.oft_", re.IGNORECASE)


def check_checkpoint_keys(keys: Iterable[str], path: Path) -> None:
    """Raise :class:`ModelLoadError` unless ``keys`` look like an SD 1.x/2.x LDM checkpoint."""
    keys = list(keys)
    if not keys:
        raise ModelLoadError(f"{path} contains no tensors.")
    if any(k.startswith("conditioner.embedders.") for k in keys):
        raise ModelLoadError(
            f"{path} is an SDXL model; SDXL is not supported yet.",
            "Choose a Stable Diffusion 1.x or 2.x base model.",
        )
    if sum(1 for k in keys if _LORA_MARKERS.search(k)) * 2 > len(keys):
        raise ModelLoadError(
            f"{path} looks like a LoRA, not a base model.",
            "`base_model` must be a full checkpoint (such as v1-5-pruned-emaonly.safetensors); "
            "a LoRA is what training produces.",
        )
    if any(k in ("emb_params", "string_to_param", "clip_l", "clip_g") for k in keys) and len(keys) < 8:
        raise ModelLoadError(
            f"{path} looks like a textual inversion embedding, not a base model.",
            "`base_model` must be a full Stable Diffusion checkpoint.",
        )
    if not any(k.startswith(UNET_PREFIX) for k in keys):
        if any(k.startswith(("encoder.down.", "decoder.up.")) for k in keys):
            what = "a standalone VAE"
        elif any(k.startswith(("down_blocks.", "conv_in.", "encoder.layers.", "text_model.")) for k in keys):
            what = "a single diffusers-format component"
        else:
            what = "something other than a Stable Diffusion checkpoint"
        raise ModelLoadError(
            f"{path} looks like {what}: it has no UNet weights (model.diffusion_model.*).",
            "Give a full SD 1.x/2.x checkpoint, or a diffusers model folder (with model_index.json).",
        )
    if f"{UNET_PREFIX}input_blocks.0.0.weight" not in keys:
        raise ModelLoadError(
            f"{path} has a model.diffusion_model but not an SD 1.x/2.x UNet "
            "(a newer architecture such as SD3 or Flux?); only SD 1.x/2.x are supported."
        )
    if not any(k.startswith((CLIP_PREFIX, OPEN_CLIP_PREFIX)) for k in keys):
        raise ModelLoadError(
            f"{path} has no text encoder (cond_stage_model.*).",
            "Use a full checkpoint that includes the text encoder.",
        )
