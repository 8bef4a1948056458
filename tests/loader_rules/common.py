"""What both loaders share: the base model's checkpoint prefixes, the module a LoRA patches, kohya's
key grouping and which adapter (LoRA, LoHa, LoKr) a module's tensors make."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple


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


def check_family(family: str, families: tuple[str, ...] = FAMILIES) -> None:
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


def is_complete_lora(parts: set[str]) -> bool:
    return adapter_kind(parts) is not None
