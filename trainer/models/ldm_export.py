"""Convert diffusers-layout weights to the original LDM (CompVis) single-file layout.

This is the reverse of diffusers' ``single_file_utils`` converters, written out here
because diffusers ships its ``convert_diffusers_to_original_stable_diffusion.py`` only in
its source repository. Unlike that script, the block layout is not hard-coded to SD's
four levels: it is computed from the model config, so tiny test models convert too.

The LDM layout is what A1111, Forge and ComfyUI users have on disk:

- ``model.diffusion_model.*``: the UNet (``input_blocks``/``middle_block``/``output_blocks``)
- ``first_stage_model.*``: the VAE (``encoder.down.N.block.M`` ...)
- ``cond_stage_model.transformer.text_model.*``: SD1's CLIP text encoder (HF layout), or
  ``cond_stage_model.model.*``: SD2's OpenCLIP text encoder (fused ``in_proj`` weights).

Every diffusers key must map somewhere; an unmapped key raises ``KeyError`` instead of
being dropped, so a layout this module does not understand fails loudly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .ldm_file import (CLIP_PREFIX, OPEN_CLIP_PREFIX, SDXL_CLIP_L_PREFIX, SDXL_OPEN_CLIP_PREFIX, UNET_PREFIX,
                       VAE_PREFIX)


# Renames inside one residual block: (diffusers name, LDM name).
_UNET_RESNET_RENAMES = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}
# The VAE's mid-block attention: diffusers' Attention module vs LDM's AttnBlock.
_VAE_ATTN_RENAMES = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}

Tensor = torch.Tensor
# (diffusers prefix, LDM prefix, renames applied to the rest of the key)
_PrefixRule = tuple[str, str, Mapping[str, str]]


def _apply_rules(
    state_dict: Mapping[str, Tensor], rules: list[_PrefixRule], out_prefix: str
) -> dict[str, Tensor]:
    """Map every key through the first rule whose diffusers prefix it starts with."""
    # Longest prefix first, so that "mid_block.attentions.0." wins over a shorter one.
    rules = sorted(rules, key=lambda rule: len(rule[0]), reverse=True)
    converted: dict[str, Tensor] = {}
    for key, tensor in state_dict.items():
        for hf_prefix, ldm_prefix, renames in rules:
            if not key.startswith(hf_prefix):
                continue
            rest = key[len(hf_prefix) :]
            for old, new in renames.items():
                if rest.startswith(old + "."):
                    rest = new + rest[len(old) :]
                    break
            converted[out_prefix + ldm_prefix + rest] = tensor
            break
        else:
            raise KeyError(f"no LDM name for the diffusers weight {key!r}")
    return converted


def _layers_per_block(config: Mapping[str, Any]) -> int:
    layers = config["layers_per_block"]
    if isinstance(layers, (list, tuple)):
        if len(set(layers)) != 1:
            raise ValueError("the LDM layout needs the same layers_per_block in every block")
        layers = layers[0]
    return int(layers)


def unet_to_ldm(state_dict: Mapping[str, Tensor], config: Mapping[str, Any]) -> dict[str, Tensor]:
    """Convert a ``UNet2DConditionModel`` state dict to ``model.diffusion_model.*`` keys.

    ``config`` is the UNet's config (``unet.config``); its block types and
    ``layers_per_block`` decide the LDM block numbering.
    """
    return _apply_rules(state_dict, _unet_rules(config), UNET_PREFIX)


def unet_module_names_to_ldm(modules: list[str], config: Mapping[str, Any]) -> dict[str, str]:
    """LDM module paths (``input_blocks.4.1.proj_in``) of diffusers UNet module paths
    (``down_blocks.1.attentions.0.proj_in``): the names sd-scripts gives SDXL's LoRA layers."""
    probe = {f"{module}.weight": module for module in modules}
    converted = _apply_rules(probe, _unet_rules(config), "")
    return {module: key.removesuffix(".weight") for key, module in converted.items()}


def _unet_rules(config: Mapping[str, Any]) -> list[_PrefixRule]:
    per_level = _layers_per_block(config) + 1  # LDM: the resnets plus a down/upsampler slot
    down_types = list(config["down_block_types"])
    up_types = list(config["up_block_types"])
    levels = len(down_types)
    plain: Mapping[str, str] = {}
    rules: list[_PrefixRule] = [
        ("time_embedding.linear_1.", "time_embed.0.", plain),
        ("time_embedding.linear_2.", "time_embed.2.", plain),
        ("conv_in.", "input_blocks.0.0.", plain),
        ("conv_norm_out.", "out.0.", plain),
        ("conv_out.", "out.2.", plain),
        ("mid_block.resnets.0.", "middle_block.0.", _UNET_RESNET_RENAMES),
        ("mid_block.attentions.0.", "middle_block.1.", plain),
        ("mid_block.resnets.1.", "middle_block.2.", _UNET_RESNET_RENAMES),
        # SDXL's added conditioning (pooled text and size/crop numbers).
        ("add_embedding.linear_1.", "label_emb.0.0.", plain),
        ("add_embedding.linear_2.", "label_emb.0.2.", plain),
    ]
    for level, block_type in enumerate(down_types):
        has_attention = "CrossAttn" in block_type
        for j in range(per_level - 1):
            ldm = per_level * level + j + 1  # input_blocks.0 is conv_in
            rules.append((f"down_blocks.{level}.resnets.{j}.", f"input_blocks.{ldm}.0.", _UNET_RESNET_RENAMES))
            if has_attention:
                rules.append((f"down_blocks.{level}.attentions.{j}.", f"input_blocks.{ldm}.1.", plain))
        if level < levels - 1:
            rules.append(
                (f"down_blocks.{level}.downsamplers.0.conv.", f"input_blocks.{per_level * (level + 1)}.0.op.", plain)
            )
    for level, block_type in enumerate(up_types):
        has_attention = "CrossAttn" in block_type
        for j in range(per_level):
            ldm = per_level * level + j
            rules.append((f"up_blocks.{level}.resnets.{j}.", f"output_blocks.{ldm}.0.", _UNET_RESNET_RENAMES))
            if has_attention:
                rules.append((f"up_blocks.{level}.attentions.{j}.", f"output_blocks.{ldm}.1.", plain))
        if level < levels - 1:
            # The upsampler sits after the resnet (slot 1), or after the attention (slot 2).
            slot = 2 if has_attention else 1
            last = per_level * level + per_level - 1
            rules.append((f"up_blocks.{level}.upsamplers.0.", f"output_blocks.{last}.{slot}.", plain))
    return rules


def vae_to_ldm(state_dict: Mapping[str, Tensor], config: Mapping[str, Any]) -> dict[str, Tensor]:
    """Convert an ``AutoencoderKL`` state dict to ``first_stage_model.*`` keys."""
    levels = len(config["down_block_types"])
    plain: Mapping[str, str] = {}
    rules: list[_PrefixRule] = []
    for part in ("encoder", "decoder"):
        rules += [
            (f"{part}.conv_in.", f"{part}.conv_in.", plain),
            (f"{part}.conv_out.", f"{part}.conv_out.", plain),
            (f"{part}.conv_norm_out.", f"{part}.norm_out.", plain),
            (f"{part}.mid_block.resnets.0.", f"{part}.mid.block_1.", plain),
            (f"{part}.mid_block.resnets.1.", f"{part}.mid.block_2.", plain),
            (f"{part}.mid_block.attentions.0.", f"{part}.mid.attn_1.", _VAE_ATTN_RENAMES),
        ]
    for level in range(levels):
        rules += [
            (f"encoder.down_blocks.{level}.resnets.", f"encoder.down.{level}.block.", plain),
            (f"encoder.down_blocks.{level}.downsamplers.0.", f"encoder.down.{level}.downsample.", plain),
            # The decoder counts its levels from the bottom in LDM, from the top in diffusers.
            (f"decoder.up_blocks.{level}.resnets.", f"decoder.up.{levels - 1 - level}.block.", plain),
            (f"decoder.up_blocks.{level}.upsamplers.0.", f"decoder.up.{levels - 1 - level}.upsample.", plain),
        ]
    rules += [("quant_conv.", "quant_conv.", plain), ("post_quant_conv.", "post_quant_conv.", plain)]
    converted = _apply_rules(state_dict, rules, VAE_PREFIX)
    result: dict[str, Tensor] = {}
    for key, tensor in converted.items():
        # Resnet shortcuts (diffusers conv_shortcut, LDM nin_shortcut) sit below the
        # rules' prefixes, at any depth, so they are renamed here in one place.
        key = key.replace(".conv_shortcut.", ".nin_shortcut.")
        # LDM's AttnBlock uses 1x1 convolutions where diffusers uses linear layers.
        if ".mid.attn_1." in key and key.endswith(("q.weight", "k.weight", "v.weight", "proj_out.weight")):
            if tensor.ndim == 2:
                tensor = tensor.reshape(*tensor.shape, 1, 1)
        result[key] = tensor
    return result


def clip_to_ldm(state_dict: Mapping[str, Tensor], prefix: str = CLIP_PREFIX) -> dict[str, Tensor]:
    """Convert a ``CLIPTextModel`` state dict to SD1's ``cond_stage_model.transformer.*`` keys
    (SDXL's CLIP-L: ``prefix`` ``conditioner.embedders.0.transformer.``).

    Accepts both the flattened layout of transformers >= 5.6 (``embeddings.*``) and the
    older one (``text_model.embeddings.*``). ``position_ids`` is a constant, not a weight,
    and is left out.
    """
    result: dict[str, Tensor] = {}
    for key, tensor in state_dict.items():
        key = key.removeprefix("text_model.")
        if key.endswith("position_ids"):
            continue
        result[prefix + "text_model." + key] = tensor
    return result


def clip_to_open_clip_ldm(state_dict: Mapping[str, Tensor], num_layers: int, *, prefix: str = OPEN_CLIP_PREFIX,
                          add_unused_block: bool = True) -> dict[str, Tensor]:
    """Convert a ``CLIPTextModel`` state dict to SD2's OpenCLIP ``cond_stage_model.model.*`` keys.

    SD2 conditions on the penultimate layer of OpenCLIP, so diffusers' SD2 text encoder
    has one layer fewer than the OpenCLIP model. To write a file with the shape SD2 tools
    expect, one unused final block is appended (zero weights, unit layer norms), plus the
    ``text_projection`` that OpenCLIP carries (identity; SD never uses it).

    SDXL's second encoder (``CLIPTextModelWithProjection``, ``prefix``
    ``conditioner.embedders.1.model.``) has all its layers and a real projection: then
    ``add_unused_block`` is False and its ``text_projection.weight`` is written transposed,
    as OpenCLIP multiplies by it from the right.
    """
    flat = {key.removeprefix("text_model."): t for key, t in state_dict.items()}
    projection = flat.pop("text_projection.weight", None)
    out: dict[str, Tensor] = {
        "token_embedding.weight": flat["embeddings.token_embedding.weight"],
        "positional_embedding": flat["embeddings.position_embedding.weight"],
        "ln_final.weight": flat["final_layer_norm.weight"],
        "ln_final.bias": flat["final_layer_norm.bias"],
    }
    layer_renames = {
        "layer_norm1": "ln_1",
        "layer_norm2": "ln_2",
        "mlp.fc1": "mlp.c_fc",
        "mlp.fc2": "mlp.c_proj",
        "self_attn.out_proj": "attn.out_proj",
    }
    for i in range(num_layers):
        src = f"encoder.layers.{i}."
        dst = f"transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            # OpenCLIP uses torch's nn.MultiheadAttention: q, k and v in one matrix.
            out[dst + f"attn.in_proj_{kind}"] = torch.cat(
                [flat[src + f"self_attn.{p}_proj.{kind}"] for p in ("q", "k", "v")], dim=0
            )
            for old, new in layer_renames.items():
                out[dst + f"{new}.{kind}"] = flat[src + f"{old}.{kind}"]
    used = {f"encoder.layers.{i}.{name}" for i in range(num_layers) for name in _CLIP_LAYER_NAMES}
    used |= {
        "embeddings.token_embedding.weight",
        "embeddings.position_embedding.weight",
        "final_layer_norm.weight",
        "final_layer_norm.bias",
    }
    leftover = sorted(k for k in flat if k not in used and not k.endswith("position_ids"))
    if leftover:
        raise KeyError(f"no OpenCLIP name for the text encoder weights {leftover[:5]}")
    if add_unused_block:
        last = f"transformer.resblocks.{num_layers - 1}."
        extra = f"transformer.resblocks.{num_layers}."
        for key in [k for k in out if k.startswith(last)]:
            name = key[len(last) :]
            filler = torch.ones_like if name in ("ln_1.weight", "ln_2.weight") else torch.zeros_like
            out[extra + name] = filler(out[key])
    if projection is not None:
        out["text_projection"] = projection.T.contiguous()
    else:
        width = out["token_embedding.weight"].shape[1]
        out["text_projection"] = torch.eye(width, dtype=out["token_embedding.weight"].dtype)
    return {prefix + key: tensor for key, tensor in out.items()}


_CLIP_LAYER_NAMES = [
    f"{module}.{kind}"
    for module in (
        "self_attn.q_proj",
        "self_attn.k_proj",
        "self_attn.v_proj",
        "self_attn.out_proj",
        "layer_norm1",
        "layer_norm2",
        "mlp.fc1",
        "mlp.fc2",
    )
    for kind in ("weight", "bias")
]


def export_ldm_checkpoint(
    unet: torch.nn.Module, vae: torch.nn.Module, text_encoder: Any, family: str
) -> dict[str, Tensor]:
    """One LDM-layout state dict for a whole model (``family`` "sd1", "sd2" or "sdxl").

    ``text_encoder`` is the text encoder, or for SDXL the pair (CLIP-L, OpenCLIP bigG).

    The tensors are made contiguous (safetensors requires it) and detached; they may
    share memory with the models.
    """
    state = unet_to_ldm(unet.state_dict(), unet.config)
    state.update(vae_to_ldm(vae.state_dict(), vae.config))
    if family == "sd2":
        num_layers = int(text_encoder.config.num_hidden_layers)
        state.update(clip_to_open_clip_ldm(text_encoder.state_dict(), num_layers))
    elif family == "sd1":
        state.update(clip_to_ldm(text_encoder.state_dict()))
    elif family == "sdxl":
        clip_l, open_clip = text_encoder  # SDXL's two encoders
        state.update(clip_to_ldm(clip_l.state_dict(), SDXL_CLIP_L_PREFIX))
        state.update(clip_to_open_clip_ldm(open_clip.state_dict(), int(open_clip.config.num_hidden_layers),
                                           prefix=SDXL_OPEN_CLIP_PREFIX, add_unused_block=False))
    else:
        raise ValueError(f"unknown model family {family!r}")
    return {key: tensor.detach().contiguous() for key, tensor in state.items()}
