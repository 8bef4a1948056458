"""Load Flux.1 from the split files people keep for ComfyUI, fully offline.

ComfyUI users have Flux.1 as four separate things: the transformer in Black Forest Labs'
layout (``models/unet/flux1-dev.safetensors``), CLIP-L (``models/clip/clip_l.safetensors``,
Hugging Face names), T5-XXL (``models/clip/t5xxl_fp16.safetensors``, Hugging Face names) and
the VAE (``models/vae/ae.safetensors``, the original autoencoder layout). The options
``clip_l_path``, ``t5_path``, ``ae_path`` and ``t5_tokenizer_path`` name the last three and
the T5 tokenizer (ComfyUI bundles its own; FLUX.1-dev's ``tokenizer_2`` folder works).

Every model is built from a config inferred from the tensor shapes and loaded exactly
(:mod:`.split_files`): a missing or misshapen weight names its file. What the weights cannot
say, and the rules used instead: the rotary split of the heads
(:func:`flux_layout.rotary_axes`); CLIP-L uses quick_gelu and 64-channel heads; the VAE's
scale and shift are Flux.1's.
"""

from __future__ import annotations

from .offline import enable_offline_mode

enable_offline_mode()  # before diffusers/transformers are imported: they read it at import

from collections.abc import Mapping  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from diffusers import AutoencoderKL, FluxTransformer2DModel  # noqa: E402
from transformers import CLIPTextModel, T5EncoderModel  # noqa: E402

from trainer.model_family import FLUX_FILE_OPTIONS, VAE_PREFIX, weight_files  # noqa: E402

from . import flux_layout  # noqa: E402
from .errors import ModelLoadError  # noqa: E402
from .split_files import (clip_encoder, companion_path, ldm_vae, load_t5_tokenizer, original_transformer,  # noqa: E402
                          read_weights, t5_encoder)

FLUX_VAE_SCALING, FLUX_VAE_SHIFT = 0.3611, 0.1159  # Flux.1's ae
LAYOUT_HINT = "the file may be damaged, or be another model's; Flux.1's files come as ComfyUI keeps them"


@dataclass
class FluxParts:
    """The models and the T5 tokenizer read from split files."""

    transformer: FluxTransformer2DModel
    vae: AutoencoderKL
    clip: CLIPTextModel
    t5: T5EncoderModel
    t5_tokenizer: object


def _transformer(path: Path, dtype: torch.dtype) -> FluxTransformer2DModel:
    return original_transformer(FluxTransformer2DModel, flux_layout, flux_layout.strip_prefix(read_weights([path])),
                                "Flux.1 transformer", path, dtype, LAYOUT_HINT)


def _clip(path: Path, dtype: torch.dtype) -> CLIPTextModel:
    # OpenAI CLIP's rules: quick_gelu, 64-channel heads.
    return clip_encoder(read_weights(weight_files(path)), "sd1", "CLIP-L text encoder", path, dtype, LAYOUT_HINT)


def _t5(path: Path, dtype: torch.dtype) -> T5EncoderModel:
    return t5_encoder(read_weights(weight_files(path)), path, dtype, LAYOUT_HINT)


def _vae(path: Path, dtype: torch.dtype) -> AutoencoderKL:
    # ae.safetensors is the original autoencoder without SD's first_stage_model. prefix.
    state = {VAE_PREFIX + k.removeprefix(VAE_PREFIX): v for k, v in read_weights([path]).items()}
    return ldm_vae(state, path, dtype, scaling=FLUX_VAE_SCALING, shift=FLUX_VAE_SHIFT, what="Flux.1 VAE",
                   hint=LAYOUT_HINT)


def load_flux_files(transformer_file: Path, companions: Mapping[str, str | Path],
                    dtype: torch.dtype = torch.float32) -> FluxParts:
    """The transformer ``transformer_file`` and the files its companion options name, each checked first."""
    paths: dict[str, Path] = {}
    for option in FLUX_FILE_OPTIONS:
        path = companion_path(option, companions)
        if path is None:
            raise ModelLoadError(f"{transformer_file.name} is a Flux.1 transformer file; its other parts are "
                                 f"separate files, and {option} is not set",
                                 f"set {', '.join(FLUX_FILE_OPTIONS)} (see `python -m trainer schema`)")
        paths[option] = path
    tokenizer = load_t5_tokenizer(paths["t5_tokenizer_path"])
    return FluxParts(_transformer(transformer_file, dtype), _vae(paths["ae_path"], dtype),
                     _clip(paths["clip_l_path"], dtype), _t5(paths["t5_path"], dtype), tokenizer)
