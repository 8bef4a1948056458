"""Load an original (SGM) single-file SDXL checkpoint, fully offline, configs inferred from the weights.

The file's keys: ``model.diffusion_model.*`` (the UNet, LDM layout, with ``label_emb`` for
the added conditioning), ``first_stage_model.*`` (the VAE), ``conditioner.embedders.0.transformer.*``
(CLIP ViT-L in the HF layout) and ``conditioner.embedders.1.model.*`` (OpenCLIP ViT-bigG
with its ``text_projection``). As for SD (:mod:`.ldm_single_file`, whose inference rules in
:mod:`.ldm_configs` and :mod:`.ldm_text_encoder` this module reuses), every model is built
from a config inferred from the tensor shapes and loaded with ``strict=True``.

What the weights cannot say, and the rules used instead (they match diffusers' SDXL configs):
CLIP-L uses quick_gelu and pads with its end token; OpenCLIP bigG uses exact gelu and pads
with token 0 ("!"); attention heads have 64 channels; the VAE's scaling factor is 0.13025;
the default image size is the file's ``modelspec.resolution``, else 1024 px.
"""

from __future__ import annotations

from .offline import enable_offline_mode

enable_offline_mode()  # before diffusers/transformers are imported: they read it at import

from dataclasses import dataclass  # noqa: E402

import torch  # noqa: E402
from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: E402
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint  # noqa: E402
from transformers import CLIPTextModel, CLIPTextModelWithProjection  # noqa: E402

from .errors import ModelLoadError  # noqa: E402
from .ldm_file import SDXL_CLIP_L_PREFIX, SDXL_OPEN_CLIP_PREFIX, LdmCheckpoint  # noqa: E402
from .ldm_configs import infer_unet_config, infer_vae_config, resolve_image_size, resolve_prediction_type  # noqa: E402
from .ldm_single_file import LAYOUT_HINT, build_unet_and_vae, load_strict  # noqa: E402
from .ldm_text_encoder import clip_weights, infer_text_config, open_clip_weights  # noqa: E402

SDXL_VAE_SCALING_FACTOR = 0.13025


@dataclass
class SdxlComponents:
    """Models built from a single-file SDXL checkpoint."""

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel  # CLIP ViT-L
    text_encoder_2: CLIPTextModelWithProjection  # OpenCLIP ViT-bigG, with its projection
    prediction_type: str


def open_clip_projected_config(text_state: dict[str, torch.Tensor], projection: torch.Tensor):
    """The ``CLIPTextConfig`` of SDXL's second encoder: OpenCLIP sizes, gelu, "!" padding, projection width."""
    config = infer_text_config(text_state, "sd2")  # the OpenCLIP rules (gelu, pad token 0)
    config.projection_dim = int(projection.shape[1])
    return config


def load_sdxl_components(checkpoint: LdmCheckpoint, *, prediction_type: str | None = None,
                         dtype: torch.dtype = torch.float32) -> SdxlComponents:
    """Build SDXL's UNet, VAE and both text encoders from a single-file checkpoint, offline."""
    sd, path = checkpoint.state_dict, checkpoint.path
    prediction = resolve_prediction_type(prediction_type, checkpoint.metadata)
    image_size = resolve_image_size(checkpoint.metadata, "sdxl", prediction)
    try:
        projection = sd[SDXL_OPEN_CLIP_PREFIX + "text_projection"]  # [width, projection_dim]
        clip_l = clip_weights(sd, SDXL_CLIP_L_PREFIX)
        open_clip = open_clip_weights(sd, SDXL_OPEN_CLIP_PREFIX, drop_last=False)
        clip_l_config = infer_text_config(clip_l, "sd1")  # OpenAI CLIP rules (quick_gelu)
        open_clip_config = open_clip_projected_config(open_clip, projection)
        vae_config = infer_vae_config(sd, sample_size=image_size, scaling_factor=SDXL_VAE_SCALING_FACTOR)
        vae_scale = 2 ** (len(vae_config["block_out_channels"]) - 1)
        unet_config = infer_unet_config(sd, "sdxl", sample_size=max(1, image_size // vae_scale),
                                        pooled_width=int(projection.shape[1]))
        unet_weights = convert_ldm_unet_checkpoint(sd, unet_config)
        vae_weights = convert_ldm_vae_checkpoint(sd, vae_config)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{path}: {exc.message}", exc.hint or LAYOUT_HINT) from exc
    except (KeyError, IndexError, ValueError) as exc:
        raise ModelLoadError(f"{path}: the SDXL checkpoint lacks an expected weight ({exc!r})", LAYOUT_HINT) from exc
    width = clip_l_config.hidden_size + open_clip_config.hidden_size
    if width != unet_config["cross_attention_dim"]:
        raise ModelLoadError(
            f"{path}: the two text encoders' widths ({clip_l_config.hidden_size} + {open_clip_config.hidden_size}) "
            f"do not add up to the UNet's cross-attention width ({unet_config['cross_attention_dim']}).", LAYOUT_HINT)

    unet, vae = build_unet_and_vae(unet_config, unet_weights, vae_config, vae_weights, path, dtype)
    # On the CPU, not the meta device: CLIP models have a position_ids buffer no file carries.
    text_encoder = CLIPTextModel(clip_l_config)
    load_strict(text_encoder, clip_l, "CLIP-L text encoder", path, dtype)
    text_encoder_2 = CLIPTextModelWithProjection(open_clip_config)
    open_clip = {f"text_model.{k}": v for k, v in open_clip.items()}
    open_clip["text_projection.weight"] = projection.T  # OpenCLIP multiplies from the right
    load_strict(text_encoder_2, open_clip, "OpenCLIP text encoder", path, dtype)
    del unet_weights, vae_weights
    for model in (unet, vae, text_encoder, text_encoder_2):
        model.eval()
    return SdxlComponents(unet, vae, text_encoder, text_encoder_2, prediction)
