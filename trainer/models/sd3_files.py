"""Load SD3/3.5 from a single file, fully offline: its text encoders bundled, or as ComfyUI's files.

Stability AI's checkpoints (``sd3.5_large.safetensors``, ``sd3_medium_incl_clips_t5xxlfp16``)
hold the MMDiT under ``model.diffusion_model.`` and the VAE under ``first_stage_model.``;
some bundle the text encoders in Hugging Face names under ``text_encoders.clip_l.transformer.``,
``text_encoders.clip_g.transformer.`` and ``text_encoders.t5xxl.transformer.``, others leave
them to separate files (ComfyUI's ``models/clip/clip_l.safetensors``, ``clip_g.safetensors``,
``t5xxl_fp16.safetensors``), which ``clip_l_path``, ``clip_g_path`` and ``t5_path`` name; an
option that is set wins over a bundled encoder, as in sd-scripts. No file carries T5's
tokenizer: ``t5_tokenizer_path`` names it.

Every model is built from a config inferred from the tensor shapes and loaded exactly
(:mod:`.split_files`). What the weights cannot say, and the rules used instead: SD3's heads
have 64 channels (SD3.5's q/k norms show it); CLIP-L uses quick_gelu, CLIP-G exact gelu and
"!" padding; the VAE's scale and shift are SD3's.
"""

from __future__ import annotations

from .offline import enable_offline_mode

enable_offline_mode()  # before diffusers/transformers are imported: they read it at import

from collections.abc import Mapping  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from diffusers import AutoencoderKL, SD3Transformer2DModel  # noqa: E402
from torch import Tensor  # noqa: E402
from transformers import CLIPTextModelWithProjection, T5EncoderModel  # noqa: E402

from trainer.model_family import VAE_PREFIX, ModelKindError, companion_problems, weight_files  # noqa: E402
from trainer.model_keys import SD3_ENCODER_PREFIXES, UNET_PREFIX, classify_sd3  # noqa: E402

from . import sd3_layout  # noqa: E402
from .errors import ModelLoadError  # noqa: E402
from .split_files import (clip_encoder, companion_path, ldm_vae, load_t5_tokenizer, original_transformer,  # noqa: E402
                          read_weights, t5_encoder)

SD3_VAE_SCALING, SD3_VAE_SHIFT = 1.5305, 0.0609  # SD3's 16-channel VAE (its vae/config.json)
LAYOUT_HINT = "the file may be damaged, or be another model's; SD3's checkpoints come as Stability AI publishes them"
# Each encoder's option, what it is, and the rules of :func:`.split_files.clip_encoder` for it.
_ENCODERS = {"clip_l_path": ("CLIP-L text encoder", "sd1"), "clip_g_path": ("CLIP-G text encoder", "sd2"),
             "t5_path": ("T5 text encoder", "")}


@dataclass
class Sd3Parts:
    """The models and the T5 tokenizer read from an SD3 file and the files its options name."""

    transformer: SD3Transformer2DModel
    vae: AutoencoderKL
    clip_l: CLIPTextModelWithProjection
    clip_g: CLIPTextModelWithProjection
    t5: T5EncoderModel
    t5_tokenizer: Any


def _transformer(state: Mapping[str, Tensor], path: Path, dtype: torch.dtype) -> SD3Transformer2DModel:
    original = {k.removeprefix(UNET_PREFIX): v for k, v in state.items() if k.startswith(UNET_PREFIX)}
    return original_transformer(SD3Transformer2DModel, sd3_layout, original, "SD3 transformer", path, dtype,
                                LAYOUT_HINT)


def _encoder(option: str, state: Mapping[str, Tensor], path: Path, companions: Mapping[str, str | Path],
             dtype: torch.dtype) -> torch.nn.Module:
    """The encoder ``option`` names when it is set, else the one bundled in the checkpoint."""
    what, family = _ENCODERS[option]
    file = companion_path(option, companions)
    if file is not None:
        weights, where = read_weights(weight_files(file)), file
    else:
        prefix = SD3_ENCODER_PREFIXES[option]
        weights, where = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, path
    if option == "t5_path":
        return t5_encoder(weights, where, dtype, LAYOUT_HINT)
    return clip_encoder(weights, family, what, where, dtype, LAYOUT_HINT, projected=True)


def load_sd3_file(path: Path, companions: Mapping[str, str | Path], dtype: torch.dtype = torch.float32) -> Sd3Parts:
    """SD3's models from the checkpoint ``path`` and the files its companion options name, each checked first."""
    state = read_weights([path])
    try:
        detection = classify_sd3(list(state), path.name)
    except ModelKindError as exc:
        raise ModelLoadError(exc.message, exc.hint) from exc
    for option, message, hint in companion_problems(detection, companions):
        raise ModelLoadError(f"{option}: {message}", hint)
    clip_l, clip_g, t5 = (_encoder(option, state, path, companions, dtype) for option in _ENCODERS)
    vae = ldm_vae({k: v for k, v in state.items() if k.startswith(VAE_PREFIX)}, path, dtype, scaling=SD3_VAE_SCALING,
                  shift=SD3_VAE_SHIFT, what="SD3 VAE", hint=LAYOUT_HINT)
    tokenizer = load_t5_tokenizer(companion_path("t5_tokenizer_path", companions))
    return Sd3Parts(_transformer(state, path, dtype), vae, clip_l, clip_g, t5, tokenizer)
