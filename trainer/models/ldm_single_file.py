"""Load an original LDM (CompVis) single-file SD 1.x/2.x checkpoint, fully offline.

A1111/Forge/ComfyUI users keep base models as one ``.safetensors`` file with the keys
``model.diffusion_model.*`` (UNet), ``first_stage_model.*`` (VAE) and either
``cond_stage_model.transformer.*`` (SD1: CLIP in the HF layout) or
``cond_stage_model.model.*`` (SD2: OpenCLIP). diffusers' ``from_single_file`` can read
such a file but fetches the model configs from the Hub; here the configs are *inferred
from the tensor shapes* instead (:mod:`.ldm_configs`, whose docstring lists the rules for
what the weights cannot say, and :mod:`.ldm_text_encoder`), the weights are converted with
diffusers' own converters, and each model is built from its config and loaded with
``strict=True`` so that any mismatch is an error rather than a silently random weight.
"""

from __future__ import annotations

from .offline import enable_offline_mode

enable_offline_mode()  # before diffusers/transformers are imported: they read it at import

from collections.abc import Mapping  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: E402
from diffusers.loaders.single_file_utils import (  # noqa: E402
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
)
from transformers import CLIPTextModel  # noqa: E402

from .errors import ModelLoadError  # noqa: E402
from .ldm_configs import (detect_family, infer_unet_config, infer_vae_config, resolve_image_size,  # noqa: E402
                          resolve_prediction_type)
from .ldm_file import LdmCheckpoint  # noqa: E402
from .ldm_text_encoder import convert_text_encoder, infer_text_config  # noqa: E402

Tensor = torch.Tensor

LAYOUT_HINT = "The file may be damaged, or be a model that LoRA Studio does not support (SD 1.x/2.x and SDXL only)."


@dataclass
class LdmComponents:
    """Models built from a single-file checkpoint, plus what was decided about them."""

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    family: str  # "sd1" | "sd2"
    prediction_type: str  # "epsilon" | "v_prediction"


def _owned(tensor: Tensor, dtype: torch.dtype) -> Tensor:
    """``tensor`` cast to ``dtype``, contiguous and 64-byte aligned (copied only if needed).

    safetensors hands out tensors at arbitrary byte offsets; CPU kernels take different
    (slower, and not bit-identical) paths for unaligned data. Some converted tensors are
    non-contiguous views (1x1 conv -> linear).
    """
    target = dtype if tensor.is_floating_point() else tensor.dtype
    if tensor.dtype != target or not tensor.is_contiguous() or tensor.data_ptr() % 64:
        return tensor.to(dtype=target, memory_format=torch.contiguous_format, copy=True)
    return tensor


def load_strict(
    model: torch.nn.Module, weights: Mapping[str, Tensor], what: str, path: Path, dtype: torch.dtype
) -> None:
    """Load ``weights`` into ``model`` (often on the meta device) exactly: a missing, extra or
    misshapen weight is a :class:`ModelLoadError` naming ``what`` and the file."""
    # The tensors are prepared before loading: with assign=True they become the
    # parameters, so no second copy of the model is made (nor diffusers' .to() needed).
    weights = {k: _owned(v, dtype) for k, v in weights.items()}
    try:
        model.load_state_dict(weights, strict=True, assign=True)
    except (RuntimeError, KeyError) as exc:
        raise ModelLoadError(
            f"The {what} weights in {path} do not fit the model inferred from them: {exc}",
            LAYOUT_HINT,
        ) from exc
    leftover = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftover:
        raise ModelLoadError(f"The {what} weights in {path} lack {leftover[:3]}")


def build_unet_and_vae(unet_config: dict[str, Any], unet_weights: Mapping[str, Tensor], vae_config: dict[str, Any],
                       vae_weights: Mapping[str, Tensor], path: Path, dtype: torch.dtype
                       ) -> tuple[UNet2DConditionModel, AutoencoderKL]:
    """The UNet and VAE made on the meta device (no random init of ~1e9 weights) and given the
    file's converted weights with :func:`load_strict`."""
    with torch.device("meta"):
        unet = UNet2DConditionModel(**unet_config)
        vae = AutoencoderKL(**vae_config)
    load_strict(unet, unet_weights, "UNet", path, dtype)
    load_strict(vae, vae_weights, "VAE", path, dtype)
    return unet, vae



def load_ldm_components(
    checkpoint: LdmCheckpoint, *, prediction_type: str | None = None, dtype: torch.dtype = torch.float32
) -> LdmComponents:
    """Build the UNet, VAE and text encoder from a single-file checkpoint, offline.

    The UNet and VAE are created on the meta device (no random init of ~1e9 weights)
    and receive the checkpoint's tensors with ``load_state_dict(strict=True, assign=True)``.
    """
    sd, path = checkpoint.state_dict, checkpoint.path
    family = detect_family(sd)
    prediction = resolve_prediction_type(prediction_type, checkpoint.metadata)
    image_size = resolve_image_size(checkpoint.metadata, family, prediction)

    try:
        vae_config = infer_vae_config(sd, sample_size=image_size)
        vae_scale = 2 ** (len(vae_config["block_out_channels"]) - 1)
        unet_config = infer_unet_config(sd, family, sample_size=max(1, image_size // vae_scale))
        unet_weights = convert_ldm_unet_checkpoint(sd, unet_config)
        vae_weights = convert_ldm_vae_checkpoint(sd, vae_config)
        text_weights, _layout = convert_text_encoder(sd)
        text_config = infer_text_config(text_weights, family)
    except ModelLoadError as exc:  # the inference rules' own words, plus the file's name
        raise ModelLoadError(f"{path}: {exc.message}", exc.hint or LAYOUT_HINT) from exc
    except (KeyError, IndexError, ValueError) as exc:
        raise ModelLoadError(f"{path}: the checkpoint lacks an expected weight ({exc!r})", LAYOUT_HINT) from exc
    if text_config.hidden_size != unet_config["cross_attention_dim"]:
        raise ModelLoadError(
            f"{path}: the text encoder's width ({text_config.hidden_size}) does not match the "
            f"UNet's cross-attention width ({unet_config['cross_attention_dim']}).",
            LAYOUT_HINT,
        )

    unet, vae = build_unet_and_vae(unet_config, unet_weights, vae_config, vae_weights, path, dtype)

    # Built on the CPU, not the meta device: CLIPTextModel has a non-persistent
    # position_ids buffer that no state dict carries. Its init costs about a second.
    text_encoder = CLIPTextModel(text_config)
    load_strict(text_encoder, text_weights, "text encoder", path, dtype)
    del unet_weights, vae_weights, text_weights

    for model in (unet, vae, text_encoder):
        model.eval()  # as from_pretrained returns them; the trainer switches what it trains
    return LdmComponents(unet, vae, text_encoder, family, prediction)
