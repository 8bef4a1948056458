"""Which family a single-file checkpoint is, told from its tensor names and shapes (torch-free).

A ``.safetensors`` header lists every tensor's name and shape without loading anything, and
each family's original layout has names no other has: SD's UNet (``model.diffusion_model.
input_blocks.*``) with one CLIP, SDXL's two ``conditioner.embedders``, Flux.1's
``double_blocks``, SD3's MMDiT ``joint_blocks``. :func:`classify_keys` applies those rules;
a file that is no trainable base model is refused named for what it is (a LoRA, a VAE, a
refiner ...). :mod:`trainer.model_family` reads the headers and diffusers folders and
re-exports what is here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from trainer.family_specs import FAMILIES_BY_ID, FLUX_FILE_OPTIONS, FamilySpec
from trainer.problems import ExplainedError

# Key prefixes of an original (LDM / CompVis / SGM) single-file checkpoint.
UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."  # SD1: CLIP in the HF layout
OPEN_CLIP_PREFIX = "cond_stage_model.model."  # SD2: OpenCLIP
SD_TEXT_PREFIXES = (CLIP_PREFIX, OPEN_CLIP_PREFIX)
SDXL_CLIP_L_PREFIX = "conditioner.embedders.0.transformer."
SDXL_OPEN_CLIP_PREFIX = "conditioner.embedders.1.model."
SDXL_REFINER_PREFIX = "conditioner.embedders.0.model."  # the refiner has OpenCLIP bigG only
# SD3's single files (Stability AI's and ComfyUI's) bundle the text encoders in Hugging Face names under
# these prefixes, each with the option that names the encoder when the file lacks it.
SD3_ENCODER_PREFIXES = {"clip_l_path": "text_encoders.clip_l.transformer.",
                        "clip_g_path": "text_encoders.clip_g.transformer.",
                        "t5_path": "text_encoders.t5xxl.transformer."}


class ModelKindError(ExplainedError):
    """The base model is not one the trainer can train on; the message says what it is."""


@dataclass(frozen=True)
class Detection:
    """What a base model is: its family (when trainable), variant and a phrase for people."""

    family: str  # a FamilySpec id
    variant: str  # "sd1", "sd2", "sdxl", "sd3.5-large" ...
    what: str  # "an SDXL base model"
    # Options naming the other files this base model needs (a Flux.1 transformer file: its
    # text encoders, VAE and T5 tokenizer), see :func:`trainer.model_family.companion_problems`.
    companions: tuple[str, ...] = ()

    @property
    def spec(self) -> FamilySpec:
        """The family's :class:`FamilySpec`."""
        return FAMILIES_BY_ID[self.family]

    @property
    def badge(self) -> str:
        """A short name for a badge in the app: "SD 1.x", "SD 2.x", "SDXL", "LLM · llama"."""
        if self.spec.task == "text":
            return f"LLM · {self.variant}"
        return BADGES.get(self.variant, self.spec.label)


BADGES = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL", "flux": "Flux.1", "sd3-medium": "SD3 Medium",
          "sd3.5-medium": "SD3.5 Medium", "sd3.5-large": "SD3.5 Large"}

# kohya (lora_unet_*, .lora_down), PEFT (lora_A/lora_B), old diffusers (to_k_lora.down),
# LyCORIS (hada_w*, lokr_w*, oft_*): no base model has such names.
_LORA_MARKERS = re.compile(r"lora|hada_w|lokr_w|\.oft_", re.IGNORECASE)
NOT_YET = "LoRA Studio trains Stable Diffusion 1.x/2.x, SDXL, Flux.1 and Stable Diffusion 3/3.5 models"


def _has(keys: Sequence[str], *prefixes: str) -> bool:
    return any(k.startswith(prefixes) for k in keys)


def classify_keys(shapes: Mapping[str, Sequence[int]], name: str) -> Detection:
    """The family of a single-file checkpoint from its tensor names and shapes.

    Raises :class:`ModelKindError` naming what the file is when it is not a trainable base
    model. ``name`` is the file's name for the messages.
    """
    keys = list(shapes)
    if not keys:
        raise ModelKindError(f"{name} contains no tensors")
    if sum(1 for k in keys if _LORA_MARKERS.search(k)) * 2 > len(keys):
        raise ModelKindError(f"{name} looks like a LoRA, not a base model",
                             "`base_model` must be a full checkpoint (such as sd_xl_base_1.0.safetensors); "
                             "a LoRA is what training produces")
    if any(k in ("emb_params", "string_to_param", "clip_l", "clip_g") for k in keys) and len(keys) < 8:
        raise ModelKindError(f"{name} looks like a textual inversion embedding, not a base model",
                             "`base_model` must be a full checkpoint")
    if any(".double_blocks." in k or k.startswith("double_blocks.") for k in keys):
        return _classify_flux(keys, name)
    if any(".joint_blocks." in k or k.startswith("joint_blocks.") for k in keys):
        return classify_sd3(keys, name)
    if _has(keys, "conditioner.embedders."):
        return _classify_sdxl(shapes, keys, name)
    if not _has(keys, UNET_PREFIX):
        if _has(keys, "encoder.down.", "decoder.up."):
            what = "a standalone VAE"
        elif _has(keys, "down_blocks.", "conv_in.", "encoder.layers.", "text_model."):
            what = "a single diffusers-format component"
        else:
            what = "something other than a Stable Diffusion checkpoint"
        raise ModelKindError(f"{name} looks like {what}: it has no UNet weights (model.diffusion_model.*)",
                             "give a full checkpoint, or a diffusers model folder (with model_index.json)")
    if f"{UNET_PREFIX}input_blocks.0.0.weight" not in shapes:
        raise ModelKindError(f"{name} has a model.diffusion_model but not a Stable Diffusion UNet (a newer "
                             "architecture?)", NOT_YET)
    if not _has(keys, *SD_TEXT_PREFIXES):
        raise ModelKindError(f"{name} has no text encoder (cond_stage_model.*)",
                             "use a full checkpoint that includes the text encoder")
    variant = "sd2" if _has(keys, SD_TEXT_PREFIXES[1]) or _cross_attention_width(shapes) == 1024 else "sd1"
    return Detection("sd", variant, f"a Stable Diffusion {'2.x' if variant == 'sd2' else '1.x'} model")


def _classify_flux(keys: Sequence[str], name: str) -> Detection:
    if _has(keys, "text_encoders.", "vae.", VAE_PREFIX):
        raise ModelKindError(f"{name} is an all-in-one Flux.1 checkpoint (transformer, text encoders and VAE in one "
                             "file), which is not read yet",
                             "give the transformer file (such as flux1-dev.safetensors) with clip_l_path, t5_path, "
                             "ae_path and t5_tokenizer_path, or the model's diffusers folder")
    return Detection("flux", "flux", "a Flux.1 transformer file", companions=FLUX_FILE_OPTIONS)


def sd3_variant(has_qk_norm: bool, has_dual_attention: bool) -> str:
    """SD3's variant by its transformer's structure, as sd-scripts tells them (``sd3_utils``): SD3.5
    normalises q and k (RMS norms ``ln_q``/``ln_k``), and SD3.5 Medium's MMDiT-X blocks have a second
    image attention (``attn2``) that Large's lack; SD3 Medium has neither."""
    if not has_qk_norm:
        return "sd3-medium"
    return "sd3.5-medium" if has_dual_attention else "sd3.5-large"


def classify_sd3(keys: Sequence[str], name: str) -> Detection:
    """An SD3/3.5 checkpoint: the MMDiT (``model.diffusion_model.joint_blocks.*``) and its VAE
    (``first_stage_model.*``), with the text encoders bundled (``text_encoders.*``) or named by options."""
    transformer = [k for k in keys if k.startswith(UNET_PREFIX + "joint_blocks.")]
    if not transformer:
        raise ModelKindError(f"{name} has SD3's MMDiT blocks but not under model.diffusion_model. (a bare transformer "
                             "file, without its VAE)",
                             "give the full checkpoint (such as sd3.5_large.safetensors, with first_stage_model.*) "
                             "or the model's diffusers folder")
    if not _has(keys, VAE_PREFIX):
        raise ModelKindError(f"{name} is a Stable Diffusion 3 transformer without its VAE (first_stage_model.*)",
                             "give the full checkpoint (such as sd3.5_large.safetensors from Stability AI) or the "
                             "model's diffusers folder")
    variant = sd3_variant(any(k.endswith("context_block.attn.ln_k.weight") for k in transformer),
                          any(".x_block.attn2." in k for k in transformer))
    missing = tuple(option for option, prefix in SD3_ENCODER_PREFIXES.items() if not _has(keys, prefix))
    # No single file carries T5's tokenizer (the CLIP tokenizers ship with the trainer).
    return Detection("sd3", variant, f"an {BADGES[variant]} checkpoint", companions=(*missing, "t5_tokenizer_path"))


def _cross_attention_width(shapes: Mapping[str, Sequence[int]]) -> int | None:
    for key, shape in shapes.items():
        if key.startswith(UNET_PREFIX) and key.endswith("attn2.to_k.weight") and len(shape) == 2:
            return int(shape[1])
    return None


def _classify_sdxl(shapes: Mapping[str, Sequence[int]], keys: Sequence[str], name: str) -> Detection:
    if _has(keys, SDXL_REFINER_PREFIX) and not _has(keys, SDXL_OPEN_CLIP_PREFIX):
        raise ModelKindError(f"{name} is an SDXL refiner, which has only one text encoder and refines finished "
                             "images", "train LoRAs on an SDXL base model (such as sd_xl_base_1.0.safetensors)")
    conv_in = shapes.get(f"{UNET_PREFIX}input_blocks.0.0.weight")
    if conv_in is None:
        raise ModelKindError(f"{name} has SDXL text encoders but no SDXL UNet (model.diffusion_model.*)",
                             "give a full SDXL checkpoint, not a text-encoder file")
    if len(conv_in) == 4 and conv_in[1] != 4:
        raise ModelKindError(f"{name} is an SDXL inpainting model (its UNet takes {conv_in[1]} input channels); "
                             "LoRA Studio trains text-to-image models, whose UNet takes 4",
                             "choose the text-to-image version of the base model")
    for prefix, encoder in ((SDXL_CLIP_L_PREFIX, "CLIP-L"), (SDXL_OPEN_CLIP_PREFIX, "OpenCLIP bigG")):
        if not _has(keys, prefix):
            raise ModelKindError(f"{name} is an SDXL model without its {encoder} text encoder "
                                 f"({prefix.rstrip('.')}.*); SDXL needs both",
                                 "use a full SDXL checkpoint that includes both text encoders")
    return Detection("sdxl", "sdxl", "an SDXL base model")
