"""Load an original LDM (CompVis) single-file SD 1.x/2.x checkpoint, fully offline.

A1111/Forge/ComfyUI users keep base models as one ``.safetensors`` file with the keys
``model.diffusion_model.*`` (UNet), ``first_stage_model.*`` (VAE) and either
``cond_stage_model.transformer.*`` (SD1: CLIP in the HF layout) or
``cond_stage_model.model.*`` (SD2: OpenCLIP). diffusers' ``from_single_file`` can read
such a file but fetches the model configs from the Hub; here the configs are *inferred
from the tensor shapes* instead, the weights are converted with diffusers' own
converters, and each model is built from its config and loaded with ``strict=True`` so
that any mismatch is an error rather than a silently random weight.

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

from .offline import enable_offline_mode

enable_offline_mode()  # before diffusers/transformers are imported: they read it at import

import re  # noqa: E402
from collections.abc import Iterable, Mapping  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: E402
from diffusers.loaders.single_file_utils import (  # noqa: E402
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
)
from transformers import CLIPTextConfig, CLIPTextModel  # noqa: E402

from .errors import ModelLoadError  # noqa: E402
from .ldm_file import CLIP_PREFIX, OPEN_CLIP_PREFIX, UNET_PREFIX, VAE_PREFIX, LdmCheckpoint  # noqa: E402

Tensor = torch.Tensor

LDM_VAE_SCALING_FACTOR = 0.18215  # SD 1.x and 2.x (config scale_factor in CompVis yamls)
CLIP_VOCAB_SIZE = 49408
CLIP_BOS_TOKEN_ID = 49406  # <|startoftext|>
CLIP_EOS_TOKEN_ID = 49407  # <|endoftext|>
SD2_PAD_TOKEN_ID = 0  # "!": OpenCLIP pads with token 0, so SD2's tokenizer does too

LAYOUT_HINT = "The file may be damaged, or be a model that LoRA Studio does not support (SD 1.x/2.x and SDXL only)."


@dataclass
class LdmComponents:
    """Models built from a single-file checkpoint, plus what was decided about them."""

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    family: str  # "sd1" | "sd2"
    prediction_type: str  # "epsilon" | "v_prediction"


# ------------------------------------------------------------------ inference rules


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


def text_encoder_heads(hidden_size: int) -> int:
    """Attention heads of an SD text encoder: 64 channels per head, at least one head."""
    return max(1, hidden_size // 64)


def clip_text_config(
    *,
    family: str,
    vocab_size: int,
    hidden_size: int,
    intermediate_size: int,
    num_hidden_layers: int,
    max_position_embeddings: int,
) -> CLIPTextConfig:
    """The ``CLIPTextConfig`` of an SD text encoder with these sizes.

    SD1's OpenAI CLIP uses quick_gelu, SD2's OpenCLIP exact gelu; both use layer norm
    epsilon 1e-5. The token ids match the CLIP tokenizer (pooled output finds the EOS).
    """
    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=text_encoder_heads(hidden_size),
        max_position_embeddings=max_position_embeddings,
        hidden_act="gelu" if family == "sd2" else "quick_gelu",
        layer_norm_eps=1e-5,
        bos_token_id=CLIP_BOS_TOKEN_ID,
        eos_token_id=CLIP_EOS_TOKEN_ID,
        pad_token_id=SD2_PAD_TOKEN_ID if family == "sd2" else CLIP_EOS_TOKEN_ID,
    )


def _indices(keys: Iterable[str], prefix: str) -> list[int]:
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
    input_ids = _indices(sd, p + "input_blocks.")
    output_ids = _indices(sd, p + "output_blocks.")
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
            depths.append(len(_indices(sd, f"{p}input_blocks.{first}.1.transformer_blocks.")))
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
    levels = _indices(sd, p + "encoder.down.")
    block_out_channels = [int(sd[f"{p}encoder.down.{i}.block.0.conv1.weight"].shape[0]) for i in levels]
    return {
        "sample_size": sample_size,
        "in_channels": int(sd[p + "encoder.conv_in.weight"].shape[1]),
        "out_channels": int(sd[p + "decoder.conv_out.weight"].shape[0]),
        "down_block_types": ["DownEncoderBlock2D"] * len(levels),
        "up_block_types": ["UpDecoderBlock2D"] * len(levels),
        "block_out_channels": block_out_channels,
        "layers_per_block": len(_indices(sd, p + "encoder.down.0.block.")),
        "latent_channels": int(sd[p + "decoder.conv_in.weight"].shape[1]),
        "scaling_factor": scaling_factor,
        "mid_block_add_attention": p + "encoder.mid.attn_1.q.weight" in sd,
        "use_quant_conv": p + "quant_conv.weight" in sd,
        "use_post_quant_conv": p + "post_quant_conv.weight" in sd,
    }


# ------------------------------------------------------------- text encoder mapping

_OPEN_CLIP_LAYER_RENAMES = {
    "ln_1": "layer_norm1",
    "ln_2": "layer_norm2",
    "mlp.c_fc": "mlp.fc1",
    "mlp.c_proj": "mlp.fc2",
    "attn.out_proj": "self_attn.out_proj",
}


def clip_weights(state_dict: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """A HF-layout CLIP text encoder under ``prefix``, in ``CLIPTextModel``'s (flattened) names."""
    clip = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    # Old transformers put everything under text_model.; newer ones flatten it.
    converted = {k.removeprefix("text_model."): v for k, v in clip.items()}
    return {k: v for k, v in converted.items() if not k.endswith("position_ids")}


def open_clip_weights(state_dict: Mapping[str, Tensor], prefix: str, *, drop_last: bool) -> dict[str, Tensor]:
    """An OpenCLIP text encoder under ``prefix`` in ``CLIPTextModel``'s (flattened) names.

    ``drop_last``: SD2 conditions on the penultimate layer, and diffusers' SD2 text encoder
    has one layer fewer (see the module docstring); SDXL keeps every layer and picks the
    penultimate one when encoding. ``text_projection`` is left out (see :func:`open_clip_projection`).
    """
    oc = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    blocks = _indices(oc, "transformer.resblocks.")
    if len(blocks) < 2:
        raise ModelLoadError("the OpenCLIP text encoder has fewer than two layers; its penultimate one is needed")
    out = {
        "embeddings.token_embedding.weight": oc["token_embedding.weight"],
        "embeddings.position_embedding.weight": oc["positional_embedding"],
        "final_layer_norm.weight": oc["ln_final.weight"],
        "final_layer_norm.bias": oc["ln_final.bias"],
    }
    for i in blocks[:-1] if drop_last else blocks:
        src = f"transformer.resblocks.{i}."
        dst = f"encoder.layers.{i}."
        for kind in ("weight", "bias"):
            # nn.MultiheadAttention keeps q, k and v in one matrix; CLIPTextModel splits them.
            # clone(): separate storage, so that the model can be saved with safetensors.
            q, k, v = (t.clone() for t in oc[src + f"attn.in_proj_{kind}"].chunk(3, dim=0))
            out[dst + f"self_attn.q_proj.{kind}"] = q
            out[dst + f"self_attn.k_proj.{kind}"] = k
            out[dst + f"self_attn.v_proj.{kind}"] = v
            for old, new in _OPEN_CLIP_LAYER_RENAMES.items():
                out[dst + f"{new}.{kind}"] = oc[src + f"{old}.{kind}"]
    return out


def convert_text_encoder(state_dict: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], str]:
    """SD's text encoder weights in ``CLIPTextModel`` (flattened) names, and its layout.

    The layout is ``"clip"`` (SD1, HF names under ``cond_stage_model.transformer.``) or
    ``"open_clip"`` (SD2; the last block is dropped, see the module docstring).
    """
    clip = clip_weights(state_dict, CLIP_PREFIX)
    if clip:
        return clip, "clip"
    return open_clip_weights(state_dict, OPEN_CLIP_PREFIX, drop_last=True), "open_clip"


def infer_text_config(text_state: Mapping[str, Tensor], family: str) -> CLIPTextConfig:
    """The ``CLIPTextConfig`` that fits converted (``CLIPTextModel``-named) weights."""
    vocab_size, hidden_size = text_state["embeddings.token_embedding.weight"].shape
    return clip_text_config(
        family=family,
        vocab_size=int(vocab_size),
        hidden_size=int(hidden_size),
        intermediate_size=int(text_state["encoder.layers.0.mlp.fc1.weight"].shape[0]),
        num_hidden_layers=len(_indices(text_state, "encoder.layers.")),
        max_position_embeddings=int(text_state["embeddings.position_embedding.weight"].shape[0]),
    )


# ------------------------------------------------------------------------- building


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
