"""Flux.1's two weight layouts: Black Forest Labs' original and diffusers', and the way between.

The original layout (``flux1-dev.safetensors``, what ComfyUI loads and sd-scripts' LoRA names
follow) fuses layers that diffusers keeps apart: a double block's q, k and v are one
``img_attn.qkv`` layer, and a single block's q, k, v and MLP input are one ``linear1``.
One table below says which diffusers layers each original layer is, in order; every
conversion (base weights both ways, LoRA names) reads it, so the layouts cannot drift apart.

A fused layer is its parts stacked along the output dimension. The parts' sizes need no
config: every part but the last has the model's width (the fused layer's input size), the
last takes the rest (a single block's MLP is 4x wider). The final layer's modulation is
stored as (shift, scale) in the original and (scale, shift) in diffusers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

ORIGINAL_PREFIX = "model.diffusion_model."  # some repacks keep the transformer under it

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
_DOUBLE_NORMS = {"img_attn.norm.query_norm": "attn.norm_q", "img_attn.norm.key_norm": "attn.norm_k",
                 "txt_attn.norm.query_norm": "attn.norm_added_q", "txt_attn.norm.key_norm": "attn.norm_added_k"}
_SINGLE_NORMS = {"norm.query_norm": "attn.norm_q", "norm.key_norm": "attn.norm_k"}
_OUTER: dict[str, tuple[str, ...]] = {
    "img_in": ("x_embedder",), "txt_in": ("context_embedder",),
    "time_in.in_layer": ("time_text_embed.timestep_embedder.linear_1",),
    "time_in.out_layer": ("time_text_embed.timestep_embedder.linear_2",),
    "vector_in.in_layer": ("time_text_embed.text_embedder.linear_1",),
    "vector_in.out_layer": ("time_text_embed.text_embedder.linear_2",),
    "guidance_in.in_layer": ("time_text_embed.guidance_embedder.linear_1",),
    "guidance_in.out_layer": ("time_text_embed.guidance_embedder.linear_2",),
    "final_layer.linear": ("proj_out",),
}
_FINAL_MODULATION = ("final_layer.adaLN_modulation.1", "norm_out.linear")  # halves swapped
BLOCK_KINDS = {"transformer_blocks": ("double_blocks", DOUBLE_BLOCK),
               "single_transformer_blocks": ("single_blocks", SINGLE_BLOCK)}
_DIFFUSERS_BLOCK = re.compile(r"^(transformer_blocks|single_transformer_blocks)\.(\d+)\.(.+)$")


def block_of(module: str) -> tuple[str, int, str] | None:
    """(block kind, index, layer) of a diffusers transformer module name, or None outside the blocks."""
    match = _DIFFUSERS_BLOCK.match(module)
    return (match[1], int(match[2]), match[3]) if match else None


def _indices(keys: Sequence[str], prefix: str) -> list[int]:
    return sorted({int(k[len(prefix):].split(".", 1)[0]) for k in keys if k.startswith(prefix)})


def _linear_table(original_keys: Sequence[str]) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(original module, diffusers modules) for every linear layer of a model with these keys."""
    yield from _OUTER.items()
    for kind, (original, table) in BLOCK_KINDS.items():
        for index in _indices(original_keys, original + "."):
            for name, parts in table.items():
                yield f"{original}.{index}.{name}", tuple(f"{kind}.{index}.{part}" for part in parts)


def _norm_table(original_keys: Sequence[str]) -> Iterator[tuple[str, str]]:
    for index in _indices(original_keys, "double_blocks."):
        for name, part in _DOUBLE_NORMS.items():
            yield f"double_blocks.{index}.{name}.scale", f"transformer_blocks.{index}.{part}.weight"
    for index in _indices(original_keys, "single_blocks."):
        for name, part in _SINGLE_NORMS.items():
            yield f"single_blocks.{index}.{name}.scale", f"single_transformer_blocks.{index}.{part}.weight"


def _swap_halves(tensor: Tensor) -> Tensor:
    first, second = tensor.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def _copy_the_rest(source: Mapping[str, Tensor], out: dict[str, Tensor], norms: list[tuple[str, str]],
                   modulation: tuple[str, str]) -> None:
    """The norms (renamed: ``(from, to)`` pairs) and the final modulation (its halves swapped)."""
    for name, target in norms:
        out[target] = source[name]
    name, target = modulation
    for suffix in ("weight", "bias"):
        out[f"{target}.{suffix}"] = _swap_halves(source[f"{name}.{suffix}"])


def strip_prefix(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The transformer's weights without the ``model.diffusion_model.`` prefix some files carry."""
    return {k.removeprefix(ORIGINAL_PREFIX): v for k, v in state.items()}


def to_diffusers(original: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A ``FluxTransformer2DModel`` state dict from original-layout weights (fused layers split).

    Raises KeyError naming a weight the original layout should have and ``original`` lacks.
    """
    original = strip_prefix(original)
    keys = list(original)
    out: dict[str, Tensor] = {}
    for source, parts in _linear_table(keys):
        if source + ".weight" not in original and source.startswith("guidance_in."):
            continue  # schnell has no guidance input
        weight = original[source + ".weight"]
        width = weight.shape[1]
        sizes = [width] * (len(parts) - 1) + [weight.shape[0] - width * (len(parts) - 1)]
        for suffix in ("weight", "bias"):
            tensor = original.get(f"{source}.{suffix}")
            if tensor is not None:
                for part, piece in zip(parts, torch.split(tensor, sizes, dim=0)):
                    out[f"{part}.{suffix}"] = piece
    _copy_the_rest(original, out, list(_norm_table(keys)), _FINAL_MODULATION)
    return out


def to_original(diffusers: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Original-layout weights from a ``FluxTransformer2DModel`` state dict (split layers fused)."""
    original_keys = [key.replace("single_transformer_blocks.", "single_blocks.").replace("transformer_blocks.",
                                                                                         "double_blocks.")
                     for key in diffusers]
    out: dict[str, Tensor] = {}
    for target, parts in _linear_table(original_keys):
        for suffix in ("weight", "bias"):
            pieces = [diffusers.get(f"{part}.{suffix}") for part in parts]
            if all(piece is not None for piece in pieces):
                out[f"{target}.{suffix}"] = torch.cat(pieces, dim=0)
    _copy_the_rest(diffusers, out, [(b, a) for a, b in _norm_table(original_keys)], _FINAL_MODULATION[::-1])
    return out


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
        "num_layers": len(_indices(keys, "double_blocks.")),
        "num_single_layers": len(_indices(keys, "single_blocks.")),
        "attention_head_dim": head_dim,
        "num_attention_heads": int(width) // head_dim,
        "joint_attention_dim": int(shapes["txt_in.weight"][1]),
        "pooled_projection_dim": int(shapes["vector_in.in_layer.weight"][1]),
        "guidance_embeds": "guidance_in.in_layer.weight" in shapes,
        "axes_dims_rope": rotary_axes(head_dim),
    }
