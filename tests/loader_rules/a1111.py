"""AUTOMATIC1111's LoRA key rules (``extensions-builtin/Lora``): its diffusers-name conversion and
the network layers it matches kohya's module names against."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from .common import (SD1_CLIP_CKPT_PREFIX, SD2_OPEN_CLIP_CKPT_PREFIX, SDXL_CLIP_G_CKPT_PREFIX,
                     SDXL_CLIP_L_CKPT_PREFIX, UNET_CKPT_PREFIX, Target, check_family, is_complete_lora,
                     lora_modules)


# networks.py suffix_conversion["resnets"]: a diffusers resnet module -> its LDM name.
_A1111_RESNET_SUFFIX = {
    "conv1": "in_layers_2",
    "conv2": "out_layers_3",
    "norm1": "in_layers_0",
    "norm2": "out_layers_0",
    "time_emb_proj": "emb_layers_1",
    "conv_shortcut": "skip_connection",
}
# networks.py re_x_proj: a name ending in _q_proj/_k_proj/_v_proj, split off its projection.
_A1111_X_PROJ = re.compile(r"(.*)_([qkv]_proj)$")
# Modules with a `.weight` that lora_patches.py does not patch (nn.Embedding).
_A1111_UNPATCHED_LEAVES = ("token_embedding", "position_embedding")


def _a1111_open_clip_name(layer: str, rest: str) -> str:
    # networks.py convert_diffusers_name_to_compvis, the OpenCLIP text rules: HF layer module
    # names become OpenCLIP's (fc1 -> c_fc, fc2 -> c_proj, else self_attn -> attn).
    if "mlp_fc1" in rest:
        rest = rest.replace("mlp_fc1", "mlp_c_fc")
    elif "mlp_fc2" in rest:
        rest = rest.replace("mlp_fc2", "mlp_c_proj")
    else:
        rest = rest.replace("self_attn", "attn")
    return f"model_transformer_resblocks_{layer}_{rest}"


def a1111_convert_diffusers_name(key: str, is_sd2: bool) -> str:
    """A1111's first guess at the module a LoRA module name means (its network layer name).

    Restates networks.py (``lora_convert.py`` in some versions) ``convert_diffusers_name_to_compvis``:
    the first matching rule wins, each rule anchored at the start of the name only; a name
    no rule matches comes back unchanged. The UNet arithmetic is SD 1.x's layout (three
    input/output blocks per level, the first up block without attention), whatever the model.
    """
    def match(pattern: str) -> re.Match[str] | None:
        return re.match(pattern, key)

    if m := match(r"lora_unet_conv_in(.*)"):
        return f"diffusion_model_input_blocks_0_0{m[1]}"
    if m := match(r"lora_unet_conv_out(.*)"):
        return f"diffusion_model_out_2{m[1]}"
    if m := match(r"lora_unet_time_embedding_linear_(\d+)(.*)"):
        return f"diffusion_model_time_embed_{int(m[1]) * 2 - 2}{m[2]}"
    if m := match(r"lora_unet_down_blocks_(\d+)_(attentions|resnets)_(\d+)_(.+)"):
        level, kind, layer, rest = int(m[1]), m[2], int(m[3]), m[4]
        rest = _A1111_RESNET_SUFFIX.get(rest, rest) if kind == "resnets" else rest
        return f"diffusion_model_input_blocks_{1 + 3 * level + layer}_{1 if kind == 'attentions' else 0}_{rest}"
    if m := match(r"lora_unet_mid_block_(attentions|resnets)_(\d+)_(.+)"):
        kind, layer, rest = m[1], int(m[2]), m[3]
        rest = _A1111_RESNET_SUFFIX.get(rest, rest) if kind == "resnets" else rest
        return f"diffusion_model_middle_block_{1 if kind == 'attentions' else 2 * layer}_{rest}"
    if m := match(r"lora_unet_up_blocks_(\d+)_(attentions|resnets)_(\d+)_(.+)"):
        level, kind, layer, rest = int(m[1]), m[2], int(m[3]), m[4]
        rest = _A1111_RESNET_SUFFIX.get(rest, rest) if kind == "resnets" else rest
        return f"diffusion_model_output_blocks_{3 * level + layer}_{1 if kind == 'attentions' else 0}_{rest}"
    if m := match(r"lora_unet_down_blocks_(\d+)_downsamplers_0_conv"):
        return f"diffusion_model_input_blocks_{3 + 3 * int(m[1])}_0_op"
    if m := match(r"lora_unet_up_blocks_(\d+)_upsamplers_0_conv"):
        level = int(m[1])
        return f"diffusion_model_output_blocks_{2 + 3 * level}_{2 if level > 0 else 1}_conv"
    if m := match(r"lora_te_text_model_encoder_layers_(\d+)_(.+)"):
        if is_sd2:
            return _a1111_open_clip_name(m[1], m[2])
        return f"transformer_text_model_encoder_layers_{m[1]}_{m[2]}"
    if m := match(r"lora_te2_text_model_encoder_layers_(\d+)_(.+)"):
        return "1_" + _a1111_open_clip_name(m[1], m[2])
    return key


class A1111Layer(NamedTuple):
    """One entry of A1111's ``network_layer_mapping`` that has weights.

    ``kind``: "module" (a Linear/Conv2d/norm whose patched forward applies a LoRA of its own
    name), "mha" (an ``nn.MultiheadAttention``: ``in_proj_weight`` and ``out_proj``), "mha_out"
    (the ``out_proj`` Linear inside one, whose own forward never runs) or "unpatched" (an
    ``nn.Embedding``). ``weight``: the checkpoint key of its weight (``in_proj_weight`` for
    "mha"), or None when the checkpoint has only its bias.
    """

    kind: str
    weight: str | None


def a1111_network_layers(checkpoint_keys: Iterable[str], family: str) -> dict[str, A1111Layer]:
    """A1111's ``network_layer_mapping`` names of the modules that hold the checkpoint's weights.

    Restates networks.py ``assign_network_names_to_compvis_modules``: a module's name is its
    ``named_modules()`` path with ``.`` as ``_``, taken from ``sd_model.model`` (so the UNet is
    ``diffusion_model_...``: A1111 drops the checkpoint's leading ``model.``) and from the text
    encoder's ``wrapped`` object: ``cond_stage_model.wrapped`` for SD1/SD2
    (``transformer_text_model_...`` for CLIP, ``model_transformer_resblocks_...`` for OpenCLIP),
    and for SDXL each ``conditioner.embedders[i].wrapped``, prefixed ``<i>_``
    (``0_transformer_text_model_...``, ``1_model_transformer_resblocks_...``). A module is a
    checkpoint key's prefix before ``.weight``/``.bias``, or before ``.in_proj_weight``/
    ``.in_proj_bias`` for an ``nn.MultiheadAttention``. Containers are left out: a LoRA that
    names one is never applied (only the module types lora_patches.py ``LoraPatches.apply``
    patches apply networks: Linear, Conv2d, GroupNorm, LayerNorm, MultiheadAttention).
    """
    check_family(family)
    weights: dict[str, str | None] = {}
    fused: set[str] = set()
    for key in checkpoint_keys:
        if key.startswith(UNET_CKPT_PREFIX):
            path = key[len("model."):]
            prefix = ""
        elif family == "sd1" and key.startswith(SD1_CLIP_CKPT_PREFIX):
            rest = key[len(SD1_CLIP_CKPT_PREFIX):]
            # A1111 builds transformers' CLIPTextModel, whose modules sit under `text_model`
            # whether or not an old checkpoint spells that level out.
            path = "transformer." + (rest if rest.startswith("text_model.") else "text_model." + rest)
            prefix = ""
        elif family == "sd2" and key.startswith(SD2_OPEN_CLIP_CKPT_PREFIX):
            path = key[len("cond_stage_model."):]
            prefix = ""
        elif family == "sdxl" and key.startswith((SDXL_CLIP_L_CKPT_PREFIX, SDXL_CLIP_G_CKPT_PREFIX)):
            index = key[len("conditioner.embedders.")]
            path = key[len("conditioner.embedders.0."):]
            prefix = f"{index}_"
        else:
            continue
        for suffix in (".weight", ".bias", ".in_proj_weight", ".in_proj_bias"):
            if path.endswith(suffix):
                module = path[: -len(suffix)]
                name = prefix + module.replace(".", "_")
                if suffix.startswith(".in_proj"):
                    fused.add(name)
                weights.setdefault(name, None)
                if suffix in (".weight", ".in_proj_weight"):
                    weights[name] = key
                break
    layers: dict[str, A1111Layer] = {}
    for name, weight in weights.items():
        if name in fused:
            kind = "mha"
        elif name.endswith("_out_proj") and name[: -len("_out_proj")] in fused:
            kind = "mha_out"
        elif name.endswith(_A1111_UNPATCHED_LEAVES):
            kind = "unpatched"
        else:
            kind = "module"
        layers[name] = A1111Layer(kind, weight)
    return layers


def a1111_resolve(module: str, layers: Mapping[str, A1111Layer], is_sd2: bool) -> tuple[str, str] | None:
    """Where A1111's ``load_network`` files one LoRA module: ``(network key, matched layer)``, or None.

    Restates the lookups of networks.py ``load_network``: the converted name itself; else,
    for a name ending ``_q_proj``/``_k_proj``/``_v_proj``, the layer named without that end
    (``re_x_proj``: how OpenCLIP's fused attention is reached; the network key keeps the
    projection); else, for a ``lora_unet`` name, that name with ``lora_unet`` replaced by
    ``diffusion_model`` (LDM-named UNet modules, as kohya writes them for SDXL); else, for a
    ``lora_te1_text_model`` name, ``0_transformer_text_model`` (SDXL) and then
    ``transformer_text_model`` (SD1). The OFT-only fallbacks are not restated.
    """
    key = a1111_convert_diffusers_name(module, is_sd2)
    if key in layers:
        return key, key
    if (m := _A1111_X_PROJ.match(key)) and m[1] in layers:
        return key, m[1]
    if "lora_unet" in module:
        candidates = [module.replace("lora_unet", "diffusion_model")]
    elif "lora_te1_text_model" in module:
        candidates = [module.replace("lora_te1_text_model", "0_transformer_text_model"),
                      module.replace("lora_te1_text_model", "transformer_text_model")]
    else:
        candidates = []
    for key in candidates:
        if key in layers:
            return key, key
    return None


def a1111_targets(lora_keys: Iterable[str], checkpoint_keys: Iterable[str], family: str) -> dict[str, Target]:
    """The LoRA modules A1111 applies, each with the checkpoint weight it patches.

    A module counts when it is complete (down and up weights), :func:`a1111_resolve` files it,
    and networks.py ``network_apply_weights`` then uses it: a "module" layer applies the network
    module filed under its own name; an ``nn.MultiheadAttention`` applies its four networks
    ``<name>_q_proj``/``_k_proj``/``_v_proj``/``_out_proj`` together and only when all four
    exist (q/k/v patch the thirds of ``in_proj_weight``, out its ``out_proj``). Anything else
    filed (a container, an embedding, a q/k/v name filed under a non-attention layer, an
    ``out_proj`` without its q/k/v) never touches a weight.
    """
    layers = a1111_network_layers(checkpoint_keys, family)
    # networks.py load_network: SD2 is recognised by OpenCLIP's `model_transformer_resblocks`
    # container, present exactly when the checkpoint has unprefixed OpenCLIP resblocks.
    is_sd2 = any(name.startswith("model_transformer_resblocks_") for name in layers)
    filed: dict[str, tuple[str, str]] = {}
    for module, parts in lora_modules(lora_keys).items():
        if not is_complete_lora(parts):
            continue
        resolved = a1111_resolve(module, layers, is_sd2)
        if resolved is not None:
            filed[module] = resolved
    network_keys = {key for key, _ in filed.values()}
    complete_mha = {name for name, layer in layers.items() if layer.kind == "mha"
                    and all(f"{name}_{p}" in network_keys for p in ("q_proj", "k_proj", "v_proj", "out_proj"))}
    targets: dict[str, Target] = {}
    for module, (key, matched) in filed.items():
        layer = layers[matched]
        if layer.weight is None:
            continue
        if layer.kind == "module" and key == matched:
            targets[module] = Target(layer.weight)
        elif layer.kind == "mha" and matched in complete_mha and key != matched:
            targets[module] = Target(layer.weight, key[-len("q_proj")])  # "q"/"k"/"v"
        elif layer.kind == "mha_out" and key == matched and matched[: -len("_out_proj")] in complete_mha:
            targets[module] = Target(layer.weight)
    return targets


def a1111_unmapped(lora_keys: Iterable[str], checkpoint_keys: Iterable[str], family: str) -> list[str]:
    """The LoRA modules AUTOMATIC1111 would not apply to the model, sorted.

    ``lora_keys``: the keys of a kohya LoRA file. ``checkpoint_keys``: the keys of the base
    model's LDM single file. ``family``: "sd1", "sd2" or "sdxl". See :func:`a1111_targets`.
    """
    lora_keys = list(lora_keys)
    mapped = a1111_targets(lora_keys, checkpoint_keys, family)
    return sorted(m for m in lora_modules(lora_keys) if m not in mapped)
