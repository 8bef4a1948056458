"""ComfyUI's LoRA key rules: the model state it builds from a checkpoint (OpenCLIP converted to
Hugging Face names), its key map for kohya names, and SD3's diffusers-format names."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .common import (COMFYUI_FAMILIES, SD2_OPEN_CLIP_CKPT_PREFIX, SD2_SGM_OPEN_CLIP_CKPT_PREFIX,
                     SDXL_CLIP_G_CKPT_PREFIX, SDXL_CLIP_L_CKPT_PREFIX, UNET_CKPT_PREFIX, Target, check_family,
                     is_complete_lora, lora_modules)
from .comfyui_unet import comfyui_unet_to_diffusers


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
    check_family(family, COMFYUI_FAMILIES)
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
        if model_key is None or model_key not in state or not is_complete_lora(parts):
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
