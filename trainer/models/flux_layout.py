"""Flux.1's two weight layouts: Black Forest Labs' original and diffusers', and the way between.

The original layout (``flux1-dev.safetensors``, what ComfyUI loads and sd-scripts' LoRA names
follow) fuses layers that diffusers keeps apart: a double block's q, k and v are one
``img_attn.qkv`` layer, and a single block's q, k, v and MLP input are one ``linear1``.
One table below says which diffusers layers each original layer is, in order; every
conversion (base weights both ways, LoRA names) reads it through :class:`.FusedLayout`, so
the layouts cannot drift apart. The final layer's modulation is stored as (shift, scale) in
the original and (scale, shift) in diffusers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor

from .fused_layout import ORIGINAL_PREFIX, BlockKind, FusedLayout, block_count, strip_prefix

# Original module -> the diffusers modules it is, in order (one entry: a plain rename).
DOUBLE_BLOCK: dict[str, tuple[str, ...]] = {
    "img_attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
    "txt_attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
    "img_attn.proj": ("attn.to_out.0",), "txt_attn.proj": ("attn.to_add_out",),
    "img_mlp.0": ("ff.net.0.proj",), "img_mlp.2": ("ff.net.2",),
    "txt_mlp.0": ("ff_context.net.0.proj",), "txt_mlp.2": ("ff_context.net.2",),
    "img_mod.lin": ("norm1.linear",), "txt_mod.lin": ("norm1_context.linear",),
}
SINGLE_BLOCK: dict[str, tuple[str, ...]] = {
    "linear1": ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"), "linear2": ("proj_out",),
    "modulation.lin": ("norm.linear",),
}
# RMS norms: the original's ``.scale`` is diffusers' ``.weight``.
_DOUBLE_NORMS = {"img_attn.norm.query_norm.scale": "attn.norm_q.weight",
                 "img_attn.norm.key_norm.scale": "attn.norm_k.weight",
                 "txt_attn.norm.query_norm.scale": "attn.norm_added_q.weight",
                 "txt_attn.norm.key_norm.scale": "attn.norm_added_k.weight"}
_SINGLE_NORMS = {"norm.query_norm.scale": "attn.norm_q.weight", "norm.key_norm.scale": "attn.norm_k.weight"}
_OUTER: dict[str, tuple[str, ...]] = {
    "img_in": ("x_embedder",), "txt_in": ("context_embedder",),
    "time_in.in_layer": ("time_text_embed.timestep_embedder.linear_1",),
    "time_in.out_layer": ("time_text_embed.timestep_embedder.linear_2",),
    "vector_in.in_layer": ("time_text_embed.text_embedder.linear_1",),
    "vector_in.out_layer": ("time_text_embed.text_embedder.linear_2",),
    # schnell has no guidance input: the layout leaves out what a file lacks.
    "guidance_in.in_layer": ("time_text_embed.guidance_embedder.linear_1",),
    "guidance_in.out_layer": ("time_text_embed.guidance_embedder.linear_2",),
    "final_layer.linear": ("proj_out",),
    "final_layer.adaLN_modulation.1": ("norm_out.linear",),
}
LAYOUT = FusedLayout(
    blocks=(BlockKind("transformer_blocks", "double_blocks", DOUBLE_BLOCK, _DOUBLE_NORMS),
            BlockKind("single_transformer_blocks", "single_blocks", SINGLE_BLOCK, _SINGLE_NORMS)),
    outer_linears=_OUTER, outer_swapped=frozenset({"final_layer.adaLN_modulation.1"}))
BLOCK_KINDS = {kind.diffusers: (kind.original, kind.linears) for kind in LAYOUT.blocks}

__all__ = ["BLOCK_KINDS", "DOUBLE_BLOCK", "LAYOUT", "ORIGINAL_PREFIX", "SINGLE_BLOCK", "block_of",
           "infer_transformer_config", "rotary_axes", "strip_prefix", "to_diffusers", "to_original"]


def block_of(module: str) -> tuple[str, int, str] | None:
    """(block kind, index, layer) of a diffusers transformer module name, or None outside the blocks."""
    return LAYOUT.block_of(module)


def to_diffusers(original: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A ``FluxTransformer2DModel`` state dict from original-layout weights (fused layers split)."""
    return LAYOUT.to_diffusers(original)


def to_original(diffusers: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Original-layout weights from a ``FluxTransformer2DModel`` state dict (split layers fused)."""
    return LAYOUT.to_original(diffusers)


def rotary_axes(head_dim: int) -> tuple[int, int, int]:
    """The rotary split of a head over (text position, height, width), which the weights cannot show.

    Flux.1's 128-channel heads use (16, 56, 56): an eighth for the first axis, the rest
    halved. Smaller heads follow the same rule with each axis a multiple of 4, as rotary
    pairs need (a 16-channel head: (4, 6, 6)).
    """
    first = max(4, math.ceil(head_dim / 8 / 4) * 4)
    rest = head_dim - first
    if rest <= 0 or rest % 4:
        raise ValueError(f"attention heads of {head_dim} channels cannot be split into rotary axes")
    return first, rest // 2, rest // 2


def infer_transformer_config(shapes: Mapping[str, Sequence[int]]) -> dict[str, Any]:
    """The ``FluxTransformer2DModel`` config that fits original-layout weights of these shapes."""
    shapes = {k.removeprefix(ORIGINAL_PREFIX): v for k, v in shapes.items()}
    keys = list(shapes)
    width, in_channels = shapes["img_in.weight"]
    head_dim = int(shapes["double_blocks.0.img_attn.norm.query_norm.scale"][0])
    return {
        "patch_size": 1,
        "in_channels": int(in_channels),
        "out_channels": int(shapes["final_layer.linear.weight"][0]),
        "num_layers": block_count(keys, "double_blocks."),
        "num_single_layers": block_count(keys, "single_blocks."),
        "attention_head_dim": head_dim,
        "num_attention_heads": int(width) // head_dim,
        "joint_attention_dim": int(shapes["txt_in.weight"][1]),
        "pooled_projection_dim": int(shapes["vector_in.in_layer.weight"][1]),
        "guidance_embeds": "guidance_in.in_layer.weight" in shapes,
        "axes_dims_rope": rotary_axes(head_dim),
    }
