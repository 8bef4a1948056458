"""SD3's two weight layouts: Stability AI's original MMDiT and diffusers', and the way between.

The original layout (``sd3.5_large.safetensors``, what ComfyUI loads, and the names of
sd-scripts' SD3 LoRAs: ``lora_unet_joint_blocks_N_x_block_attn_qkv``) keeps each joint block as
an image stream (``x_block``) and a text stream (``context_block``), each with one fused
``attn.qkv`` layer where diffusers has ``to_q``/``to_k``/``to_v`` (image) and
``add_q_proj``/``add_k_proj``/``add_v_proj`` (text). SD3.5 Medium's MMDiT-X blocks add a second
image-only attention (``x_block.attn2``, diffusers' ``attn2``), SD3.5's normalise q and k
(``ln_q``/``ln_k``). The last block's text stream is "pre-only": no output projection or MLP,
and a modulation of (shift, scale) that diffusers stores as (scale, shift); so is the final
layer's. The table below is read through :class:`.FusedLayout` by every conversion (the tests
hold it against diffusers' own single-file converter at full width).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor

from .fused_layout import ORIGINAL_PREFIX, BlockKind, FusedLayout, block_count

# Original module of a joint block -> the diffusers modules it is, in order.
JOINT_BLOCK: dict[str, tuple[str, ...]] = {
    "x_block.attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"), "x_block.attn.proj": ("attn.to_out.0",),
    "x_block.attn2.qkv": ("attn2.to_q", "attn2.to_k", "attn2.to_v"), "x_block.attn2.proj": ("attn2.to_out.0",),
    "x_block.mlp.fc1": ("ff.net.0.proj",), "x_block.mlp.fc2": ("ff.net.2",),
    "x_block.adaLN_modulation.1": ("norm1.linear",),
    "context_block.attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
    "context_block.attn.proj": ("attn.to_add_out",),
    "context_block.mlp.fc1": ("ff_context.net.0.proj",), "context_block.mlp.fc2": ("ff_context.net.2",),
    "context_block.adaLN_modulation.1": ("norm1_context.linear",),
}
# SD3.5's RMS norms of q and k (a `.weight` in both layouts, under other names).
_JOINT_NORMS = {"x_block.attn.ln_q.weight": "attn.norm_q.weight", "x_block.attn.ln_k.weight": "attn.norm_k.weight",
                "context_block.attn.ln_q.weight": "attn.norm_added_q.weight",
                "context_block.attn.ln_k.weight": "attn.norm_added_k.weight",
                "x_block.attn2.ln_q.weight": "attn2.norm_q.weight", "x_block.attn2.ln_k.weight": "attn2.norm_k.weight"}
_OUTER: dict[str, tuple[str, ...]] = {
    "x_embedder.proj": ("pos_embed.proj",),  # the patch embedding (a 2x2 convolution)
    "t_embedder.mlp.0": ("time_text_embed.timestep_embedder.linear_1",),
    "t_embedder.mlp.2": ("time_text_embed.timestep_embedder.linear_2",),
    "y_embedder.mlp.0": ("time_text_embed.text_embedder.linear_1",),
    "y_embedder.mlp.2": ("time_text_embed.text_embedder.linear_2",),
    "context_embedder": ("context_embedder",),
    "final_layer.linear": ("proj_out",),
    "final_layer.adaLN_modulation.1": ("norm_out.linear",),
}
LAYOUT = FusedLayout(
    blocks=(BlockKind("transformer_blocks", "joint_blocks", JOINT_BLOCK, _JOINT_NORMS,
                      last_swapped=frozenset({"context_block.adaLN_modulation.1"})),),
    outer_linears=_OUTER, outer_params={"pos_embed": "pos_embed.pos_embed"},
    outer_swapped=frozenset({"final_layer.adaLN_modulation.1"}))
SD3_HEAD_DIM = 64  # every SD3/3.5 model's attention heads; SD3 Medium's weights cannot show it (no q/k norms)


def to_diffusers(original: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """An ``SD3Transformer2DModel`` state dict from original-layout weights (``model.diffusion_model.`` or bare)."""
    return LAYOUT.to_diffusers(original)


def to_original(diffusers: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Original-layout MMDiT weights (without the ``model.diffusion_model.`` prefix) from diffusers'."""
    return LAYOUT.to_original(diffusers)


def infer_transformer_config(shapes: Mapping[str, Sequence[int]]) -> dict[str, Any]:
    """The ``SD3Transformer2DModel`` config that fits original-layout weights of these shapes.

    Raises KeyError naming a tensor every SD3 transformer has and these shapes lack.
    """
    shapes = {k.removeprefix(ORIGINAL_PREFIX): v for k, v in shapes.items()}
    keys = list(shapes)
    width, in_channels, patch, _ = shapes["x_embedder.proj.weight"]
    norm = shapes.get("joint_blocks.0.x_block.attn.ln_q.weight")
    head_dim = int(norm[0]) if norm else (SD3_HEAD_DIM if width % SD3_HEAD_DIM == 0 else int(width))
    dual = sorted({int(k.split(".")[1]) for k in keys if k.startswith("joint_blocks.") and ".x_block.attn2." in k})
    return {
        "sample_size": 128,  # 1024 px: the pipeline's default size (SD3's configs say the same)
        "patch_size": int(patch),
        "in_channels": int(in_channels),
        "out_channels": int(shapes["final_layer.linear.weight"][0]) // int(patch) ** 2,
        "num_layers": block_count(keys, "joint_blocks."),
        "attention_head_dim": head_dim,
        "num_attention_heads": int(width) // head_dim,
        "joint_attention_dim": int(shapes["context_embedder.weight"][1]),
        "caption_projection_dim": int(shapes["context_embedder.weight"][0]),
        "pooled_projection_dim": int(shapes["y_embedder.mlp.0.weight"][1]),
        "pos_embed_max_size": math.isqrt(int(shapes["pos_embed"][1])),
        "dual_attention_layers": tuple(dual),
        "qk_norm": "rms_norm" if norm else None,
    }
