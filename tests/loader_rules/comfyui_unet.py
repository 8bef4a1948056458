"""ComfyUI's UNet names: the LDM layout of a UNet config and its diffusers -> LDM module map
(comfy/utils.py ``unet_to_diffusers``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


# comfy/utils.py UNET_MAP_RESNET: a resnet's LDM sub-module -> its diffusers name.
_COMFY_RESNET_PARTS = {
    "in_layers.0": "norm1",
    "in_layers.2": "conv1",
    "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2",
    "out_layers.3": "conv2",
    "skip_connection": "conv_shortcut",
}
# comfy/utils.py UNET_MAP_ATTENTIONS: the spatial transformer's own modules (same name in both).
_COMFY_SPATIAL_TRANSFORMER_PARTS = ("norm", "proj_in", "proj_out")
# comfy/utils.py TRANSFORMER_BLOCKS: the modules of one transformer block (same name in both).
_COMFY_TRANSFORMER_BLOCK_PARTS = (
    "norm1", "norm2", "norm3",
    "attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0",
    "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0",
    "ff.net.0.proj", "ff.net.2",
)
# comfy/utils.py UNET_MAP_BASIC: the top-level modules, diffusers name -> LDM name.
_COMFY_UNET_TOP_LEVEL = {
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "class_embedding.linear_1": "label_emb.0.0",
    "class_embedding.linear_2": "label_emb.0.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
}


def _per_level(value: Any, levels: int) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value] * levels


def _depths(per_level_value: Any, layers: int) -> list[int]:
    """Transformer depth of each layer of one level (a level's value may be per layer)."""
    if isinstance(per_level_value, (list, tuple)):
        return [int(v) for v in per_level_value]
    return [int(per_level_value)] * layers


def comfyui_unet_layout(unet_config: Mapping[str, Any]) -> dict[str, Any]:
    """The block layout ComfyUI's ``unet_to_diffusers`` works from, out of a UNet config.

    ``unet_config`` is a diffusers ``UNet2DConditionModel`` config (``unet/config.json``), or a
    ComfyUI unet_config (recognised by its ``num_res_blocks``). Returns ``num_res_blocks`` (per
    level), ``input_depths`` (transformer depth of each down-block layer, in input-block order),
    ``output_depths`` (of each up-block layer, in output-block order) and ``middle_depth``.

    ComfyUI reads these from the checkpoint (comfy/model_detection.py
    ``detect_unet_config``); for a checkpoint converted from a diffusers model they are what the
    diffusers config says. ComfyUI stores ``transformer_depth_output`` from the
    highest-resolution output block down and pops it from the end
    (comfy/ldm/modules/diffusionmodules/openaimodel.py ``UNetModel``, comfy/utils.py
    ``unet_to_diffusers``), so output-block order is its reverse.
    """
    if "num_res_blocks" in unet_config:  # already ComfyUI's own form
        middle = unet_config.get("transformer_depth_middle")
        return {
            "num_res_blocks": list(unet_config["num_res_blocks"]),
            "input_depths": list(unet_config["transformer_depth"]),
            "output_depths": list(reversed(unet_config["transformer_depth_output"])),
            "middle_depth": -1 if middle is None else int(middle),
        }
    down_types = list(unet_config["down_block_types"])
    up_types = list(unet_config["up_block_types"])
    levels = len(down_types)
    num_res_blocks = [int(n) for n in _per_level(unet_config.get("layers_per_block", 2), levels)]
    transformer_layers = _per_level(unet_config.get("transformer_layers_per_block", 1), levels)
    reverse_transformer_layers = unet_config.get("reverse_transformer_layers_per_block")
    if reverse_transformer_layers is None:
        reverse_transformer_layers = list(reversed(transformer_layers))
    input_depths: list[int] = []
    for level, block_type in enumerate(down_types):
        depths = _depths(transformer_layers[level], num_res_blocks[level])
        input_depths += depths if "CrossAttn" in block_type else [0] * num_res_blocks[level]
    output_depths: list[int] = []
    up_layers = list(reversed(num_res_blocks))
    for index, block_type in enumerate(up_types):
        count = up_layers[index] + 1
        depths = _depths(reverse_transformer_layers[index], count)
        output_depths += depths if "CrossAttn" in block_type else [0] * count
    mid_type = unet_config.get("mid_block_type", "UNetMidBlock2DCrossAttn")
    if mid_type == "UNetMidBlock2DCrossAttn":
        middle = transformer_layers[-1]
        middle_depth = int(middle[0] if isinstance(middle, (list, tuple)) else middle)
    else:
        middle_depth = -1  # detect_unet_config: no middle_block.1.proj_in -> no middle attention
    return {"num_res_blocks": num_res_blocks, "input_depths": input_depths, "output_depths": output_depths,
            "middle_depth": middle_depth}


def comfyui_unet_to_diffusers(unet_config: Mapping[str, Any] | None) -> dict[str, str]:
    """ComfyUI's diffusers -> LDM name map of the UNet's modules (comfy/utils.py ``unet_to_diffusers``).

    Keys are diffusers module paths (``down_blocks.0.attentions.0.proj_in``), values the LDM
    paths under ``diffusion_model.`` (``input_blocks.1.1.proj_in``). ComfyUI's map lists
    ``.weight``/``.bias`` keys; only its ``.weight`` keys enter the LoRA key map, so module
    paths say the same. Like ComfyUI's, the map names modules a model may lack (a downsampler
    on the last level, an upsampler on the last up block): the key-map user filters those out.
    Returns ``{}`` for no config, as ``unet_to_diffusers`` does without ``num_res_blocks``.
    """
    if not unet_config:
        return {}
    layout = comfyui_unet_layout(unet_config)
    num_res_blocks = layout["num_res_blocks"]
    input_depths = list(layout["input_depths"])
    output_depths = list(layout["output_depths"])
    levels = len(num_res_blocks)
    result: dict[str, str] = {}

    def add_resnet(diffusers: str, ldm: str) -> None:
        for ldm_part, diffusers_part in _COMFY_RESNET_PARTS.items():
            result[f"{diffusers}.{diffusers_part}"] = f"{ldm}.{ldm_part}"

    def add_attention(diffusers: str, ldm: str, depth: int) -> None:
        for part in _COMFY_SPATIAL_TRANSFORMER_PARTS:
            result[f"{diffusers}.{part}"] = f"{ldm}.{part}"
        for block in range(depth):
            for part in _COMFY_TRANSFORMER_BLOCK_PARTS:
                result[f"{diffusers}.transformer_blocks.{block}.{part}"] = f"{ldm}.transformer_blocks.{block}.{part}"

    # Down blocks: input_blocks.0 is conv_in; each level's resnets (with their attention at
    # slot 1), then its downsampler. ComfyUI numbers a level's first input block
    # 1 + (this level's resnets + 1) * level, and names a downsampler for every level.
    for level in range(levels):
        block = 1 + (num_res_blocks[level] + 1) * level
        for layer in range(num_res_blocks[level]):
            add_resnet(f"down_blocks.{level}.resnets.{layer}", f"input_blocks.{block}.0")
            depth = input_depths.pop(0)
            if depth > 0:
                add_attention(f"down_blocks.{level}.attentions.{layer}", f"input_blocks.{block}.1", depth)
            block += 1
        result[f"down_blocks.{level}.downsamplers.0.conv"] = f"input_blocks.{block}.0.op"

    # The middle block: resnet, attention, resnet. The attention's own modules are named even
    # when it has no transformer blocks (a negative depth names none of those).
    add_attention("mid_block.attentions.0", "middle_block.1", max(layout["middle_depth"], 0))
    add_resnet("mid_block.resnets.0", "middle_block.0")
    add_resnet("mid_block.resnets.1", "middle_block.2")

    # Up blocks, deepest first: resnets + 1 layers per level; the upsampler follows the last
    # layer's resnet (slot 1), or its attention (slot 2).
    up_layers = list(reversed(num_res_blocks))
    for level in range(levels):
        count = up_layers[level] + 1
        block = count * level
        for layer in range(count):
            add_resnet(f"up_blocks.{level}.resnets.{layer}", f"output_blocks.{block}.0")
            slot = 1
            depth = output_depths.pop(0)
            if depth > 0:
                slot = 2
                add_attention(f"up_blocks.{level}.attentions.{layer}", f"output_blocks.{block}.1", depth)
            if layer == count - 1:
                result[f"up_blocks.{level}.upsamplers.0.conv"] = f"output_blocks.{block}.{slot}.conv"
            block += 1

    result.update(_COMFY_UNET_TOP_LEVEL)
    return result
