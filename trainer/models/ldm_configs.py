"""What an original LDM (CompVis) SD 1.x/2.x checkpoint's tensor shapes say: its family and
the UNet and VAE configs that fit its weights; from its metadata, the prediction type and
the default image size. The text encoder's config is inferred in :mod:`.ldm_text_encoder`;
:mod:`.ldm_single_file` builds the models from these configs (and the SDXL and Flux.1
loaders reuse them).

What the weights cannot say, and the rules used instead (they match diffusers' configs):

- Attention heads. SD1 (cross-attention width other than 1024, CLIP text encoder) uses
  ``attention_head_dim=8`` (diffusers' misnomer for *8 heads*). SD2 (OpenCLIP text
  encoder, or cross-attention width 1024) uses 64 channels per head
  (diffusers' ``attention_head_dim=[5, 10, 20, 20]``, i.e. ``channels // 64``).
  Text encoder heads are ``hidden_size // 64`` (12 for CLIP ViT-L, 16 for OpenCLIP ViT-H).
- Prediction type (epsilon or v): the caller's ``prediction_type`` wins, then the file's
  ``modelspec.prediction_type`` metadata (written by kohya and ComfyUI), else epsilon.
  SD 2.x 768 models are v-prediction: users must say so (the config option), because
  nothing in the weights tells a 768-v model from a 512 epsilon one.
- Default image size (UNet ``sample_size``, only a default for sampling): the file's
  ``modelspec.resolution`` metadata, else 512 px (768 px for SD2 v-prediction).
- SD2 conditions on OpenCLIP's *penultimate* layer: like diffusers' SD2 text encoder
  (23 of OpenCLIP's 24 layers), the last block is dropped when converting.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from .errors import ModelLoadError
from .ldm_file import OPEN_CLIP_PREFIX, UNET_PREFIX, VAE_PREFIX

Tensor = torch.Tensor

LDM_VAE_SCALING_FACTOR = 0.18215  # SD 1.x and 2.x (config scale_factor in CompVis yamls)


def detect_family(state_dict: Mapping[str, Tensor]) -> str:
    """``"sd2"`` for an OpenCLIP text encoder or 1024-wide cross-attention, else ``"sd1"``."""
    if any(k.startswith(OPEN_CLIP_PREFIX) for k in state_dict):
        return "sd2"
    return "sd2" if _cross_attention_dim(state_dict) == 1024 else "sd1"


def unet_attention_head_dim(family: str, block_out_channels: Iterable[int]) -> int | list[int]:
    """diffusers' ``attention_head_dim`` (really the head *count*) for a UNet of this family."""
    if family == "sd1":
        return 8
    return [max(1, c // 64) for c in block_out_channels]  # SD2 and SDXL: 64 channels per head


def key_indices(keys: Iterable[str], prefix: str) -> list[int]:
    """Sorted distinct integers N in keys of the form ``prefix + "N." + ...``."""
    found = set()
    for key in keys:
        if key.startswith(prefix):
            head = key[len(prefix) :].split(".", 1)[0]
            if head.isdigit():
                found.add(int(head))
    return sorted(found)


def _cross_attention_dim(state_dict: Mapping[str, Tensor]) -> int | None:
    for key, tensor in state_dict.items():
        if key.startswith(UNET_PREFIX) and key.endswith("attn2.to_k.weight"):
            return int(tensor.shape[1])
    return None


def infer_unet_config(state_dict: Mapping[str, Tensor], family: str, *, sample_size: int,
                      pooled_width: int | None = None) -> dict[str, Any]:
    """A ``UNet2DConditionModel`` config that fits the LDM UNet weights in ``state_dict``.

    ``pooled_width`` (SDXL): the width of the pooled text embedding that the UNet's added
    conditioning (``label_emb``) takes beside the six size and crop numbers.
    """
    p = UNET_PREFIX
    sd = state_dict
    conv_in = sd[p + "input_blocks.0.0.weight"]
    input_ids = key_indices(sd, p + "input_blocks.")
    output_ids = key_indices(sd, p + "output_blocks.")
    # Each level has layers_per_block resnets plus one slot that holds conv_in (level 0)
    # or the previous level's downsampler, so the input blocks split evenly into levels.
    levels = 1 + sum(1 for i in input_ids if f"{p}input_blocks.{i}.0.op.weight" in sd)
    num_input = len(input_ids)
    if num_input % levels or len(output_ids) != num_input:
        raise ModelLoadError("the UNet's block layout is not an SD 1.x/2.x layout")
    per_level = num_input // levels
    layers_per_block = per_level - 1

    block_out_channels: list[int] = []
    down_types: list[str] = []
    depths: list[int] = []
    for level in range(levels):
        first = level * per_level + 1
        block_out_channels.append(int(sd[f"{p}input_blocks.{first}.0.out_layers.3.weight"].shape[0]))
        if f"{p}input_blocks.{first}.1.proj_in.weight" in sd:
            down_types.append("CrossAttnDownBlock2D")
            depths.append(len(key_indices(sd, f"{p}input_blocks.{first}.1.transformer_blocks.")))
        else:
            down_types.append("DownBlock2D")
            depths.append(1)  # unused by a block without attention
    up_types = [
        "CrossAttnUpBlock2D" if f"{p}output_blocks.{level * per_level}.1.proj_in.weight" in sd else "UpBlock2D"
        for level in range(levels)
    ]
    mid_proj_in = sd.get(p + "middle_block.1.proj_in.weight")
    if mid_proj_in is None:
        raise ModelLoadError("the UNet has no middle-block attention; not an SD 1.x/2.x UNet")
    cross_attention_dim = _cross_attention_dim(sd)
    if cross_attention_dim is None:
        raise ModelLoadError("the UNet has no cross-attention; not a text-to-image SD UNet")
    time_embed = sd[p + "time_embed.0.weight"]
    if time_embed.shape[0] != 4 * block_out_channels[0]:
        raise ModelLoadError("the UNet's time embedding width is not 4x its base width; not an SD UNet")
    config = {
        "sample_size": sample_size,
        "in_channels": int(conv_in.shape[1]),
        "out_channels": int(sd[p + "out.2.weight"].shape[0]),
        "down_block_types": down_types,
        "up_block_types": up_types,
        "block_out_channels": block_out_channels,
        "layers_per_block": layers_per_block,
        "cross_attention_dim": cross_attention_dim,
        "attention_head_dim": unet_attention_head_dim(family, block_out_channels),
        "transformer_layers_per_block": depths[0] if len(set(depths)) == 1 else depths,
        # SD2 uses linear layers around its transformers, SD1 1x1 convolutions.
        "use_linear_projection": mid_proj_in.ndim == 2,
        # diffusers' SD 2.1 config upcasts attention to fp32; it is what keeps fp16 SD2
        # from producing NaNs, and costs nothing in fp32.
        "upcast_attention": family == "sd2",
    }
    added = sd.get(p + "label_emb.0.0.weight")
    if added is not None:
        # SDXL's micro-conditioning: the pooled text embedding and six numbers (sizes and
        # crop), each number as a sinusoidal embedding of addition_time_embed_dim channels.
        if pooled_width is None or (added.shape[1] - pooled_width) % 6:
            raise ModelLoadError("the UNet's added conditioning does not fit the second text encoder's width")
        config.update(addition_embed_type="text_time", addition_time_embed_dim=(added.shape[1] - pooled_width) // 6,
                      projection_class_embeddings_input_dim=int(added.shape[1]))
    return config


def infer_vae_config(state_dict: Mapping[str, Tensor], *, sample_size: int,
                     scaling_factor: float = LDM_VAE_SCALING_FACTOR) -> dict[str, Any]:
    """An ``AutoencoderKL`` config that fits the LDM VAE weights in ``state_dict``."""
    p = VAE_PREFIX
    sd = state_dict
    if p + "encoder.conv_in.weight" not in sd:
        raise ModelLoadError("the checkpoint has no VAE (first_stage_model.*)")
    levels = key_indices(sd, p + "encoder.down.")
    block_out_channels = [int(sd[f"{p}encoder.down.{i}.block.0.conv1.weight"].shape[0]) for i in levels]
    return {
        "sample_size": sample_size,
        "in_channels": int(sd[p + "encoder.conv_in.weight"].shape[1]),
        "out_channels": int(sd[p + "decoder.conv_out.weight"].shape[0]),
        "down_block_types": ["DownEncoderBlock2D"] * len(levels),
        "up_block_types": ["UpDecoderBlock2D"] * len(levels),
        "block_out_channels": block_out_channels,
        "layers_per_block": len(key_indices(sd, p + "encoder.down.0.block.")),
        "latent_channels": int(sd[p + "decoder.conv_in.weight"].shape[1]),
        "scaling_factor": scaling_factor,
        "mid_block_add_attention": p + "encoder.mid.attn_1.q.weight" in sd,
        "use_quant_conv": p + "quant_conv.weight" in sd,
        "use_post_quant_conv": p + "post_quant_conv.weight" in sd,
    }


def resolve_prediction_type(requested: str | None, metadata: Mapping[str, str]) -> str:
    """The caller's prediction type, else the file's ``modelspec.prediction_type``, else epsilon."""
    if requested is not None:
        return requested
    stated = metadata.get("modelspec.prediction_type", "").strip().lower()
    return "v_prediction" if stated in ("v", "v_prediction", "v-prediction") else "epsilon"


def resolve_image_size(metadata: Mapping[str, str], family: str, prediction_type: str) -> int:
    """The default image size: the file's ``modelspec.resolution``, else the family's usual one."""
    match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", metadata.get("modelspec.resolution", ""))
    if match:
        return int(match.group(1))
    if family == "sdxl":
        return 1024
    return 768 if family == "sd2" and prediction_type == "v_prediction" else 512
