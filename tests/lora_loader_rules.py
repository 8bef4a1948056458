"""How ComfyUI and AUTOMATIC1111 map the modules of a kohya LoRA file onto a base model.

A test helper, not a test file: pure Python, needing neither program installed. Each rule
below is our own restatement of what the real loader does, with a comment naming the file
and function of the loader it comes from (ComfyUI: repository comfyanonymous/ComfyUI, also
published as Comfy-Org/ComfyUI; A1111: AUTOMATIC1111/stable-diffusion-webui, the builtin
``extensions-builtin/Lora`` extension). Restated are kohya's key format
(``<module>.lora_down.weight``, ``<module>.lora_up.weight``, ``<module>.alpha``, with DoRA's
``dora_scale``) and LyCORIS' LoHa (``hada_w1_a`` ...) and LoKr (``lokr_w1`` ...) tensors under the
same module names, and how each program turns a module's tensors into a patched weight
(:func:`comfyui_patched_weight`, :func:`a1111_patched_weight`; LyCORIS' own definition:
:func:`lycoris_merged_weight`). The other formats both programs also read (diffusers/peft
names, OFT, GLoRA...) are left out, which can only make these rules stricter than the
programs, never more lenient.

The base model is described by the keys of its original LDM single file:
``model.diffusion_model.*`` (UNet), ``cond_stage_model.transformer.text_model.*`` (SD1's CLIP),
``cond_stage_model.model.*`` (SD2's OpenCLIP), ``conditioner.embedders.0.transformer.text_model.*``
and ``conditioner.embedders.1.model.*`` (SDXL's CLIP-L and OpenCLIP bigG). Both programs name
their modules after their own model objects; for real checkpoints those objects hold exactly
the checkpoint's weights, so the checkpoint's keys stand in for the model here (a tiny test
model would not even be *detected* by ComfyUI, whose model detection wants SD's real widths;
these rules check the names only).

Two limits, on purpose: the rules look at names, not at tensor shapes (a LoRA whose shapes do
not fit its target is still "mapped" here; check shapes against the :class:`Target` the
``*_targets`` functions return), and they do not model loading-time failures of the whole file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

FAMILIES = ("sd1", "sd2", "sdxl")
COMFYUI_FAMILIES = (*FAMILIES, "flux", "sd3")  # A1111 has neither Flux.1 nor SD3 (Forge has; not restated here)

LORA_DOWN = "lora_down.weight"
LORA_UP = "lora_up.weight"

UNET_CKPT_PREFIX = "model.diffusion_model."
SD1_CLIP_CKPT_PREFIX = "cond_stage_model.transformer."
SD2_OPEN_CLIP_CKPT_PREFIX = "cond_stage_model.model."
SD2_SGM_OPEN_CLIP_CKPT_PREFIX = "conditioner.embedders.0.model."  # SD2 saved in the sgm layout
SDXL_CLIP_L_CKPT_PREFIX = "conditioner.embedders.0."
SDXL_CLIP_G_CKPT_PREFIX = "conditioner.embedders.1."


class Target(NamedTuple):
    """The base-model weight a LoRA module ends up patching.

    ``key`` is a key of the LDM single file. ``part`` is ``"q"``, ``"k"`` or ``"v"`` when the
    patch covers that third (rows) of a fused ``attn.in_proj_weight`` of OpenCLIP, else None.
    """

    key: str
    part: str | None = None


def _check_family(family: str, families: tuple[str, ...] = FAMILIES) -> None:
    if family not in families:
        raise ValueError(f"family must be one of {families}, not {family!r}")


def flux_checkpoint_keys(transformer_keys: Iterable[str], clip_l_keys: Iterable[str]) -> list[str]:
    """The keys of Flux.1 loaded from split files, as one checkpoint for :func:`comfyui_model_state`.

    ComfyUI's "Load Diffusion Model" node reads the transformer file (BFL names, sometimes under
    ``model.diffusion_model.``) into the model's ``diffusion_model.``; its DualCLIPLoader (type
    flux) puts clip_l.safetensors (HF names) under ``clip_l.transformer.`` (comfy/text_encoders/
    flux.py ``FluxClipModel``: an ``SDClipModel`` named clip_l beside the t5xxl one).
    """
    keys = [UNET_CKPT_PREFIX + k.removeprefix(UNET_CKPT_PREFIX) for k in transformer_keys]
    return keys + ["clip_l.transformer." + k for k in clip_l_keys]


def sd3_checkpoint_keys(checkpoint_keys: Iterable[str], clip_l_keys: Iterable[str] = (), clip_g_keys: Iterable[str] = (),
                        t5_keys: Iterable[str] = ()) -> list[str]:
    """The keys of SD3 loaded from a checkpoint and TripleCLIPLoader's files, as one checkpoint for
    :func:`comfyui_model_state`.

    A checkpoint bundles the text encoders under ``text_encoders.clip_l.``, ``.clip_g.`` and ``.t5xxl.``
    (each ``transformer.`` + Hugging Face names). TripleCLIPLoader loads its three files into the same three
    models of comfy/text_encoders/sd3_clip.py ``SD3ClipModel`` (``load_sd``, which tells a file's kind by its
    layer count: layer 30 means CLIP-G, layer 1 CLIP-L, else T5; a tiny CLIP-G of two layers would be taken
    for CLIP-L there, so here each file counts for what it is named), so their keys land where the bundled
    ones do.
    """
    keys = list(checkpoint_keys)
    for name, file_keys in (("clip_l", clip_l_keys), ("clip_g", clip_g_keys), ("t5xxl", t5_keys)):
        keys += [f"text_encoders.{name}.transformer.{k}" for k in file_keys]
    return keys


def lora_modules(lora_keys: Iterable[str]) -> dict[str, set[str]]:
    """Group the keys of a kohya LoRA file by module: ``{module: {"lora_down.weight", "alpha", ...}}``.

    The module is the key up to its first dot, the way A1111 splits it
    (``extensions-builtin/Lora/networks.py`` ``load_network``: ``partition(".")``); kohya's
    module names themselves contain no dot. A key with no dot is a module with no parts.
    """
    modules: dict[str, set[str]] = {}
    for key in lora_keys:
        module, _, part = key.partition(".")
        parts = modules.setdefault(module, set())
        if part:
            parts.add(part)
    return modules


HADA_PARTS = ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b")


def adapter_kind(parts: set[str]) -> str | None:
    """"lora", "loha" or "lokr": the adapter both programs make of one module's tensors; None when
    they make none (an incomplete module). ``alpha`` and ``dora_scale`` are optional extras."""
    # LoRA needs the pair: ComfyUI's LoRA adapter (comfy/weight_adapter/lora.py LoRAAdapter.load;
    # comfy/lora.py load_lora in older versions) is found through "<x>.lora_up.weight" and then
    # reads "<x>.lora_down.weight"; A1111's network_lora.py ModuleTypeLora.create_module accepts a
    # module only with both (and load_network raises for a matched module that no type accepts).
    if LORA_DOWN in parts and LORA_UP in parts:
        return "lora"
    # LoHa: ComfyUI's LoHaAdapter.load is found through hada_w1_a and reads the other three;
    # A1111's network_hada.py ModuleTypeHada wants all four.
    if all(name in parts for name in HADA_PARTS):
        return "loha"
    # LoKr: each factor whole or as its two halves (A1111's network_lokr.py ModuleTypeLokr: has_1 and
    # has_2; ComfyUI's LoKrAdapter loads with either, but its calculate_weight fails without both).
    has_1 = "lokr_w1" in parts or {"lokr_w1_a", "lokr_w1_b"} <= parts
    has_2 = "lokr_w2" in parts or {"lokr_w2_a", "lokr_w2_b"} <= parts
    return "lokr" if has_1 and has_2 else None


def _is_complete_lora(parts: set[str]) -> bool:
    return adapter_kind(parts) is not None


# =====================================================================================
# ComfyUI
# =====================================================================================

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


# comfy/utils.py transformers_convert: OpenCLIP resblock sub-modules -> HF CLIP layer names.
_COMFY_OPEN_CLIP_LAYER_PARTS = {
    "ln_1": "layer_norm1",
    "ln_2": "layer_norm2",
    "mlp.c_fc": "mlp.fc1",
    "mlp.c_proj": "mlp.fc2",
    "attn.out_proj": "self_attn.out_proj",
}
_COMFY_OPEN_CLIP_TOP_LEVEL = {
    "positional_embedding": "embeddings.position_embedding.weight",
    "token_embedding.weight": "embeddings.token_embedding.weight",
    "ln_final.weight": "final_layer_norm.weight",
    "ln_final.bias": "final_layer_norm.bias",
}
_COMFY_OPEN_CLIP_CONVERTED_LAYERS = 32  # clip_text_transformers_convert converts resblocks 0..31


def _comfy_open_clip_to_hf(state: dict[str, Target], prefix_from: str, prefix_to: str) -> None:
    """Rename one OpenCLIP text tower in ``state`` to the HF CLIP layout, in place.

    comfy/utils.py ``clip_text_transformers_convert`` / ``transformers_convert``: the model
    goes to ``<prefix_to>text_model.``, each fused ``attn.in_proj_weight`` becomes three
    q/k/v weights (its row thirds), ``text_projection`` moves under ``prefix_to``.
    """
    text_model = f"{prefix_to}text_model."
    for src, dst in _COMFY_OPEN_CLIP_TOP_LEVEL.items():
        if prefix_from + src in state:
            state[text_model + dst] = state.pop(prefix_from + src)
    for layer in range(_COMFY_OPEN_CLIP_CONVERTED_LAYERS):
        src = f"{prefix_from}transformer.resblocks.{layer}."
        dst = f"{text_model}encoder.layers.{layer}."
        for old, new in _COMFY_OPEN_CLIP_LAYER_PARTS.items():
            for kind in ("weight", "bias"):
                if f"{src}{old}.{kind}" in state:
                    state[f"{dst}{new}.{kind}"] = state.pop(f"{src}{old}.{kind}")
        for kind in ("weight", "bias"):
            fused = state.pop(f"{src}attn.in_proj_{kind}", None)
            if fused is not None:
                for part in ("q", "k", "v"):
                    state[f"{dst}self_attn.{part}_proj.{kind}"] = Target(fused.key, part)
    for name in ("text_projection.weight", "text_projection"):
        if prefix_from + name in state:
            state[f"{prefix_to}text_projection.weight"] = state.pop(prefix_from + name)


def comfyui_model_state(checkpoint_keys: Iterable[str], family: str) -> dict[str, Target]:
    """The state-dict keys of ComfyUI's loaded model, each with the checkpoint weight it holds.

    UNet: the checkpoint's ``model.diffusion_model.`` becomes ``diffusion_model.`` (the
    ``unet_prefix`` ComfyUI loads from; comfy/model_base.py ``BaseModel.load_model_weights``).
    Text encoders: comfy/supported_models.py ``process_clip_state_dict``:
    SD15 renames ``cond_stage_model.`` to ``clip_l.`` (adding a missing ``text_model.`` level),
    SD20 renames the OpenCLIP model to ``clip_h.`` and converts it to the HF layout,
    SDXL renames ``conditioner.embedders.0.transformer.text_model`` to
    ``clip_l.transformer.text_model`` and converts ``conditioner.embedders.1.model.`` as ``clip_g``.
    Flux.1 comes as split files: see :func:`flux_checkpoint_keys`; SD3 as a checkpoint, with its text
    encoders bundled or beside it: see :func:`sd3_checkpoint_keys`.
    """
    _check_family(family, COMFYUI_FAMILIES)
    state: dict[str, Target] = {}
    for key in checkpoint_keys:
        if key.startswith(UNET_CKPT_PREFIX):
            state["diffusion_model." + key[len(UNET_CKPT_PREFIX):]] = Target(key)
        elif family == "flux" and key.startswith("clip_l.transformer.text_model."):
            state[key] = Target(key)  # already ComfyUI's name (flux_checkpoint_keys)
        elif family == "sd3" and key.startswith("text_encoders."):
            # comfy/supported_models.py SD3: text_encoder_key_prefix ["text_encoders."], which
            # supported_models_base.py BASE.process_clip_state_dict strips (clip_l., clip_g., t5xxl. remain).
            state[key[len("text_encoders."):]] = Target(key)
        elif family == "sd1" and key.startswith("cond_stage_model."):
            rest = key[len("cond_stage_model."):]
            if rest.startswith("transformer.") and not rest.startswith("transformer.text_model."):
                rest = "transformer.text_model." + rest[len("transformer."):]
            state["clip_l." + rest] = Target(key)
        elif family == "sd2" and key.startswith((SD2_OPEN_CLIP_CKPT_PREFIX, SD2_SGM_OPEN_CLIP_CKPT_PREFIX)):
            rest = key.removeprefix(SD2_OPEN_CLIP_CKPT_PREFIX).removeprefix(SD2_SGM_OPEN_CLIP_CKPT_PREFIX)
            state["clip_h." + rest] = Target(key)
        elif family == "sdxl" and key.startswith(SDXL_CLIP_L_CKPT_PREFIX + "transformer.text_model"):
            state["clip_l." + key[len(SDXL_CLIP_L_CKPT_PREFIX):]] = Target(key)
        elif family == "sdxl" and key.startswith(SDXL_CLIP_G_CKPT_PREFIX + "model."):
            state["clip_g." + key[len(SDXL_CLIP_G_CKPT_PREFIX + "model."):]] = Target(key)
    if family == "sd2":
        _comfy_open_clip_to_hf(state, "clip_h.", "clip_h.transformer.")
    if family == "sdxl":
        _comfy_open_clip_to_hf(state, "clip_g.", "clip_g.transformer.")
    return state


# comfy/lora.py LORA_CLIP_MAP: the text-encoder layer modules ComfyUI maps kohya names onto.
_COMFY_CLIP_LAYER_MODULES = {
    "mlp.fc1": "mlp_fc1",
    "mlp.fc2": "mlp_fc2",
    "self_attn.k_proj": "self_attn_k_proj",
    "self_attn.q_proj": "self_attn_q_proj",
    "self_attn.v_proj": "self_attn_v_proj",
    "self_attn.out_proj": "self_attn_out_proj",
}
_COMFY_CLIP_LAYERS_SCANNED = 32  # model_lora_keys_clip looks at layers 0..31 only


def comfyui_key_map(model_state: Iterable[str], unet_config: Mapping[str, Any] | None = None) -> dict[str, str]:
    """ComfyUI's kohya LoRA key map: LoRA module name -> key of its model state dict.

    ``model_state`` are the keys :func:`comfyui_model_state` returns. Restates comfy/lora.py
    ``model_lora_keys_unet`` and ``model_lora_keys_clip`` for the kohya names:

    - every ``diffusion_model.<X>.weight`` gives ``lora_unet_<X with . as _>`` (LDM names);
    - every ``.weight`` of :func:`comfyui_unet_to_diffusers` gives ``lora_unet_<diffusers path
      with . as _>`` -> ``diffusion_model.<LDM path>.weight`` (diffusers names; the target is
      not checked here: ComfyUI's ``add_patches`` drops a patch whose key the model lacks);
    - the six layer modules of ``LORA_CLIP_MAP`` in text-encoder layers 0..31: ``clip_l`` and
      ``clip_h`` as ``lora_te_``/``lora_te1_``; ``clip_g`` as ``lora_te2_`` once a ``clip_l``
      layer has been seen (SDXL), else as ``lora_te_`` (a clip_g-only model, the refiner);
    - every ``t5xxl.transformer.<X>.weight`` as ``lora_te<n>_<X>``, n counting the CLIPs present (SD3: 3);
    - ``text_projection`` of clip_g/clip_l as ``lora_te2_``/``lora_te1_text_projection``.

    For SD3 (and Flux.1) the first rule is the whole of the kohya transformer names: ComfyUI's MMDiT
    (comfy/ldm/modules/diffusionmodules/mmdit.py) has the original checkpoint's module names
    (``joint_blocks.N.x_block.attn.qkv``), so sd-scripts' ``lora_unet_joint_blocks_N_x_block_attn_qkv`` maps.
    """
    keys = set(model_state)
    key_map: dict[str, str] = {}
    for key in keys:
        if key.startswith("diffusion_model.") and key.endswith(".weight"):
            key_map["lora_unet_" + key[len("diffusion_model."):-len(".weight")].replace(".", "_")] = key
    for diffusers, ldm in comfyui_unet_to_diffusers(unet_config).items():
        key_map["lora_unet_" + diffusers.replace(".", "_")] = f"diffusion_model.{ldm}.weight"

    clip_l_seen = False
    for layer in range(_COMFY_CLIP_LAYERS_SCANNED):
        for hf_name, kohya_name in _COMFY_CLIP_LAYER_MODULES.items():
            suffix = f"layers_{layer}_{kohya_name}"
            # The order inside one (layer, module) step is ComfyUI's: clip_h, clip_l, clip_g.
            for clip in ("clip_h", "clip_l", "clip_g"):
                key = f"{clip}.transformer.text_model.encoder.layers.{layer}.{hf_name}.weight"
                if key not in keys:
                    continue
                if clip in ("clip_h", "clip_l"):
                    key_map[f"lora_te_text_model_encoder_{suffix}"] = key
                    key_map[f"lora_te1_text_model_encoder_{suffix}"] = key
                    clip_l_seen = clip_l_seen or clip == "clip_l"
                elif clip_l_seen:
                    key_map[f"lora_te2_text_model_encoder_{suffix}"] = key
                else:
                    key_map[f"lora_te_text_model_encoder_{suffix}"] = key
    # T5 (SD3's third encoder, OneTrainer's LoRAs): every t5xxl.transformer.<X>.weight as lora_te<n>_<X>, n being
    # 1 + the CLIPs present (3 for SD3; Flux.1's T5 also answers to lora_te2_).
    clip_g_seen = any(k.startswith("clip_g.transformer.text_model.encoder.layers.") for k in keys)
    for key in keys:
        if key.startswith("t5xxl.transformer.") and key.endswith(".weight"):
            name = key[len("t5xxl.transformer."):-len(".weight")].replace(".", "_")
            index = 1 + clip_g_seen + clip_l_seen
            if clip_l_seen and index == 2:
                key_map[f"lora_te2_{name}"] = key
                index += 1
            key_map[f"lora_te{index}_{name}"] = key
    if "clip_g.transformer.text_projection.weight" in keys:
        key_map["lora_te2_text_projection"] = "clip_g.transformer.text_projection.weight"
    if "clip_l.transformer.text_projection.weight" in keys:
        key_map["lora_te1_text_projection"] = "clip_l.transformer.text_projection.weight"
    return key_map


def comfyui_targets(lora_keys: Iterable[str], checkpoint_keys: Iterable[str], family: str,
                    unet_config: Mapping[str, Any] | None = None) -> dict[str, Target]:
    """The LoRA modules ComfyUI applies, each with the checkpoint weight it patches.

    A module is applied when it is complete (down and up weights), its name is in ComfyUI's
    key map (comfy/lora.py ``load_lora`` walks the key map; anything else is "lora key not
    loaded"), and the key it maps to exists in the model (comfy/model_patcher.py
    ``ModelPatcher.add_patches`` keeps only patches of keys of the model's state dict; comfy/sd.py
    ``load_lora_for_models`` reports the rest as "NOT LOADED").
    """
    state = comfyui_model_state(checkpoint_keys, family)
    key_map = comfyui_key_map(state, unet_config)
    targets: dict[str, Target] = {}
    for module, parts in lora_modules(lora_keys).items():
        model_key = key_map.get(module)
        if model_key is None or model_key not in state or not _is_complete_lora(parts):
            continue
        targets[module] = state[model_key]
    return targets


def comfyui_unmapped(lora_keys: Iterable[str], checkpoint_keys: Iterable[str], family: str,
                     unet_config: Mapping[str, Any] | None = None) -> list[str]:
    """The LoRA modules ComfyUI would not apply to the model, sorted.

    ``lora_keys``: the keys of a kohya LoRA file. ``checkpoint_keys``: the keys of the base
    model's LDM single file (Flux.1: :func:`flux_checkpoint_keys`). ``family``: "sd1", "sd2", "sdxl" or
    "flux". ``unet_config``: the UNet's
    diffusers config (``unet/config.json``), which ComfyUI's diffusers-name half of the key map
    is built from (:func:`comfyui_unet_to_diffusers`); without it only LDM-named UNet modules
    (``lora_unet_input_blocks_...``) can map.
    """
    lora_keys = list(lora_keys)
    mapped = comfyui_targets(lora_keys, checkpoint_keys, family, unet_config)
    return sorted(m for m in lora_modules(lora_keys) if m not in mapped)


# comfy/utils.py MMDIT_MAP_BLOCK: a joint block's diffusers module -> its MMDiT module (one to one).
_COMFY_MMDIT_BLOCK = {
    "norm1_context.linear": "context_block.adaLN_modulation.1", "attn.to_add_out": "context_block.attn.proj",
    "ff_context.net.0.proj": "context_block.mlp.fc1", "ff_context.net.2": "context_block.mlp.fc2",
    "norm1.linear": "x_block.adaLN_modulation.1", "attn.to_out.0": "x_block.attn.proj",
    "attn2.to_out.0": "x_block.attn2.proj", "ff.net.0.proj": "x_block.mlp.fc1", "ff.net.2": "x_block.mlp.fc2",
}
# comfy/utils.py mmdit_to_diffusers: the split projections -> (fused MMDiT layer, which third of its rows).
_COMFY_MMDIT_QKV = {
    "attn.to_q": ("x_block.attn.qkv", "q"), "attn.to_k": ("x_block.attn.qkv", "k"),
    "attn.to_v": ("x_block.attn.qkv", "v"),
    "attn.add_q_proj": ("context_block.attn.qkv", "q"), "attn.add_k_proj": ("context_block.attn.qkv", "k"),
    "attn.add_v_proj": ("context_block.attn.qkv", "v"),
    "attn2.to_q": ("x_block.attn2.qkv", "q"), "attn2.to_k": ("x_block.attn2.qkv", "k"),
    "attn2.to_v": ("x_block.attn2.qkv", "v"),
}


def comfyui_sd3_diffusers_key_map(num_blocks: int) -> dict[str, Target]:
    """ComfyUI's map of SD3's diffusers-format LoRA names: module -> the model weight (and row third) it patches.

    Restates comfy/lora.py ``model_lora_keys_unet`` (its ``comfy.model_base.SD3`` branch: every ``.weight`` of
    ``mmdit_to_diffusers`` as ``transformer.<diffusers module>``) for the joint blocks, and
    ``model_lora_keys_clip``'s diffusers names of the CLIPs (``text_encoder.text_model.encoder.layers.N.<module>``
    for clip_l, ``text_encoder_2.`` for clip_g). ComfyUI finds a module's tensors as
    ``<module>.lora_B.weight`` / ``.lora_A.weight`` (comfy/lora.py ``load_lora``'s diffusers2 form).
    ``mmdit_to_diffusers`` slices q, k and v out of ``qkv`` at multiples of ``64 * depth`` (the model's width);
    a tiny model's width is no multiple of 64, so the thirds are named here (``Target.part``), not offsets. Its
    last block's context modulation is also mapped with ComfyUI's scale/shift swap; not modelled here (the
    same weight is patched).
    """
    key_map: dict[str, Target] = {}
    for block in range(num_blocks):
        source, target = f"transformer.transformer_blocks.{block}.", f"diffusion_model.joint_blocks.{block}."
        for diffusers, mmdit in _COMFY_MMDIT_BLOCK.items():
            key_map[source + diffusers] = Target(f"{target}{mmdit}.weight")
        for diffusers, (mmdit, part) in _COMFY_MMDIT_QKV.items():
            key_map[source + diffusers] = Target(f"{target}{mmdit}.weight", part)
    for layer in range(_COMFY_CLIP_LAYERS_SCANNED):
        for hf_name in _COMFY_CLIP_LAYER_MODULES:
            for component, clip in (("text_encoder", "clip_l"), ("text_encoder_2", "clip_g")):
                key_map[f"{component}.text_model.encoder.layers.{layer}.{hf_name}"] = \
                    Target(f"{clip}.transformer.text_model.encoder.layers.{layer}.{hf_name}.weight")
    return key_map


def comfyui_sd3_diffusers_targets(lora_keys: Iterable[str], checkpoint_keys: Iterable[str]) -> dict[str, Target]:
    """The modules of a diffusers-format SD3 LoRA file (``transformer.<module>.lora_A.weight`` ...) that ComfyUI
    applies, each with the checkpoint weight (and its row third, for a fused ``qkv``) it patches; see
    :func:`comfyui_sd3_diffusers_key_map`. ``checkpoint_keys``: as :func:`sd3_checkpoint_keys` gives them."""
    state = comfyui_model_state(checkpoint_keys, "sd3")
    blocks = {int(k.split(".")[2]) for k in state if k.startswith("diffusion_model.joint_blocks.")}
    key_map = comfyui_sd3_diffusers_key_map(max(blocks, default=-1) + 1)
    modules: dict[str, set[str]] = {}
    for key in lora_keys:
        for part in ("lora_A.weight", "lora_B.weight"):
            if key.endswith("." + part):
                modules.setdefault(key[:-len(part) - 1], set()).add(part)
    targets: dict[str, Target] = {}
    for module, parts in modules.items():
        target = key_map.get(module)
        if target is not None and len(parts) == 2 and target.key in state:
            targets[module] = Target(state[target.key].key, target.part)
    return targets


# =====================================================================================
# AUTOMATIC1111
# =====================================================================================

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
    _check_family(family)
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
        if not _is_complete_lora(parts):
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


# =====================================================================================
# The patched weight: what each program computes from one module's tensors
# =====================================================================================


def _delta(tensors: Mapping[str, Any], shape) -> tuple[Any, int | None]:
    """(ΔW before scaling, the rank the alpha divides by or None) of one module's tensors, as both
    programs build it: LoRA ``up.flatten(1) @ down.flatten(1)`` (comfy/weight_adapter/lora.py,
    A1111 network_lora.py), LoHa ``(w1_a @ w1_b) * (w2_a @ w2_b)`` with rank ``hada_w1_b.shape[0]``
    (weight_adapter/loha.py, network_hada.py), LoKr ``kron(w1, w2)`` (w1 unsqueezed for a 4-D w2)
    with rank the first dimension of a split factor's second half, none if no factor is split
    (weight_adapter/lokr.py, network_lokr.py); reshaped to the weight's shape."""
    import torch

    t = {k: v.float() for k, v in tensors.items()}
    kind = adapter_kind(set(t))
    if kind == "lora":
        down, up = t[LORA_DOWN], t[LORA_UP]
        return (up.flatten(1) @ down.flatten(1)).reshape(shape), down.shape[0]
    if kind == "loha":
        return ((t["hada_w1_a"] @ t["hada_w1_b"]) * (t["hada_w2_a"] @ t["hada_w2_b"])).reshape(shape), \
            t["hada_w1_b"].shape[0]
    if kind == "lokr":
        rank = None
        w1 = t.get("lokr_w1")
        if w1 is None:
            w1, rank = t["lokr_w1_a"] @ t["lokr_w1_b"], t["lokr_w1_b"].shape[0]
        w2 = t.get("lokr_w2")
        if w2 is None:
            w2, rank = t["lokr_w2_a"] @ t["lokr_w2_b"], t["lokr_w2_b"].shape[0]
        if w2.dim() == 4:
            w1 = w1[:, :, None, None]
        return torch.kron(w1, w2).reshape(shape), rank
    raise ValueError(f"no adapter in {sorted(tensors)}")


def _scale(tensors: Mapping[str, Any], rank: int | None) -> float:
    # Both: alpha / rank when the file has alpha and the adapter has a rank, else 1.
    return float(tensors["alpha"]) / rank if "alpha" in tensors and rank is not None else 1.0


def _column_norm(weight):
    """The norm over the output axis of each input column, shaped [1, in, 1...] (LyCORIS' default DoRA axis)."""
    return weight.transpose(0, 1).reshape(weight.shape[1], -1).norm(dim=1, keepdim=True) \
        .reshape(weight.shape[1], *[1] * (weight.dim() - 1)).transpose(0, 1)


def _row_norm(weight):
    """The norm of each output row, shaped [out, 1...] (DoRA on the output axis)."""
    return weight.reshape(weight.shape[0], -1).norm(dim=1, keepdim=True).reshape(weight.shape[0],
                                                                                  *[1] * (weight.dim() - 1))


def comfyui_patched_weight(weight, tensors: Mapping[str, Any], strength: float = 1.0):
    """The weight ComfyUI computes for one module at ``strength`` (comfy/weight_adapter/*.py
    ``calculate_weight``). With ``dora_scale``, comfy/weight_adapter/base.py ``weight_decompose``:
    W' = (W + s ΔW) * dora_scale / norm, the norm along the axis dora_scale's shape names: on the
    output axis (dora_scale [out, 1...]) it is the norm of the *unpatched* weight's rows; on the
    input axis that of the patched weight's columns (+ eps)."""
    import torch

    weight = weight.float()
    delta, rank = _delta(tensors, weight.shape)
    alpha = _scale(tensors, rank)
    if "dora_scale" not in tensors:
        return weight + strength * alpha * delta
    dora_scale = tensors["dora_scale"].float()
    patched = weight + alpha * delta
    norm = _row_norm(weight) if dora_scale.shape[0] == patched.shape[0] else _column_norm(patched)
    patched = patched * (dora_scale / (norm + torch.finfo(weight.dtype).eps))
    return weight + strength * (patched - weight)


def a1111_patched_weight(weight, tensors: Mapping[str, Any], multiplier: float = 1.0):
    """The weight AUTOMATIC1111 computes for one module (network.py ``NetworkModule.finalize_updown``):
    ΔW scaled by alpha / rank, then with ``dora_scale`` ``apply_weight_decompose``, which always
    normalises the patched weight's columns (the input axis), whatever dora_scale's shape; times the
    multiplier."""
    weight = weight.float()
    delta, rank = _delta(tensors, weight.shape)
    updown = delta * _scale(tensors, rank)
    if "dora_scale" in tensors:
        merged = weight + updown
        updown = merged * (tensors["dora_scale"].float() / _column_norm(merged)) - weight
    return weight + updown * multiplier


def lycoris_merged_weight(weight, tensors: Mapping[str, Any]):
    """LyCORIS' own definition of the merged weight (lycoris/modules/*.py ``get_merged_weight``,
    ``apply_weight_decompose``): W + s ΔW, and with ``dora_scale`` that times dora_scale over the
    norm of the merged weight along dora_scale's axis (``wd_on_out``: rows, [out, 1...])."""
    import torch

    weight = weight.float()
    delta, rank = _delta(tensors, weight.shape)
    merged = weight + _scale(tensors, rank) * delta
    if "dora_scale" not in tensors:
        return merged
    dora_scale = tensors["dora_scale"].float()
    norm = _row_norm(merged) if dora_scale.shape[0] == merged.shape[0] else _column_norm(merged)
    return merged * (dora_scale / (norm + torch.finfo(torch.float32).eps))
