"""Which model family a base model belongs to, told from its files alone (torch-free).

A family is one kind of base model the trainer can train a LoRA for (SD 1.x/2.x, SDXL), with
the facts the app and the checks need before anything is loaded: how to recognise it, its
text encoders' token limit, its usual resolution, the constants of the memory estimate and
the options only it uses. The trainer's implementation of each family is a module under
``trainer.models`` (named by :attr:`FamilySpec.implementation`).

Recognising needs no torch: a ``.safetensors`` header is JSON (names, shapes), and a
diffusers folder says what it is in ``model_index.json``. So the app shows a model's family
as soon as it is chosen, and a wrong file is refused in milliseconds, named for what it is
(a LoRA, a VAE, an SDXL refiner, a Flux.1 model), never reported as a broken file.

Adding a family: write its module under ``trainer/models/`` (see docs/trainer.md) and add
its :class:`FamilySpec` to :data:`FAMILIES` and its recognition rule to :func:`classify_keys`
or :func:`classify_folder`.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from trainer.fsutil import read_json_object
from trainer.problems import ExplainedError

SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
MAX_HEADER_BYTES = 100_000_000

# Key prefixes of an original (LDM / CompVis / SGM) single-file checkpoint.
UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."  # SD1: CLIP in the HF layout
OPEN_CLIP_PREFIX = "cond_stage_model.model."  # SD2: OpenCLIP
SD_TEXT_PREFIXES = (CLIP_PREFIX, OPEN_CLIP_PREFIX)
SDXL_CLIP_L_PREFIX = "conditioner.embedders.0.transformer."
SDXL_OPEN_CLIP_PREFIX = "conditioner.embedders.1.model."
SDXL_REFINER_PREFIX = "conditioner.embedders.0.model."  # the refiner has OpenCLIP bigG only


@dataclass(frozen=True)
class MemoryFigures:
    """The constants of a family's GPU memory estimate, and where they come from.

    Frozen parameters (millions) of each part (the denoiser: UNet or transformer), LoRA
    parameters per unit of rank (millions) for each `lora_target`, and activations (GiB) at
    the family's usual resolution, batch 1, half precision, no gradient checkpointing.
    """

    params_m: Mapping[str, float]
    lora_params_per_rank_m: Mapping[str, float]
    activations_gb: float
    source: str
    # Of the denoiser's parameters, those in the linear layers that 8-bit base weights store in
    # one byte each (``quantization_bit: 8``: the blocks' linear layers); 0 where the family has none.
    quantized_m: float = 0.0


@dataclass(frozen=True)
class FamilySpec:
    """What the app and the checks know about a family without loading a model."""

    id: str  # the `model_family` value
    label: str  # for people: "SDXL"
    implementation: str  # module under trainer.models with the family's model class
    token_limit: int  # caption tokens the text encoder(s) see, start and end tokens not counted
    default_resolution: int
    bucket_range: tuple[int, int]  # the usual min/max bucket sides at the default resolution
    memory: MemoryFigures
    # Options that only this family uses (the form hides them for other families).
    own_options: frozenset[str] = field(default_factory=frozenset)
    tiny_variant: str = ""  # `make-tiny-model --family` value of the family's tiny test model
    token_encoder: str = "CLIP"  # whose tokens `token_limit` counts (the encoder that cuts captions off)
    task: str = "image"  # "image" (a LoRA for a diffusion model) or "text" (a causal language model's)
    # The `quantization_bit` values besides "none" this family takes (the base weights in fewer bits).
    quantization_bits: tuple[str, ...] = ()
    # Text encoders that stay frozen whatever `train_text_encoder` says (Flux.1's T5).
    frozen_encoders: tuple[str, ...] = ()


_SD_MEMORY = MemoryFigures({"denoiser": 860, "text_encoder": 123, "vae": 84},
                           {"attention": 0.20, "attention_ff": 0.40, "all": 0.85}, 3.0,
                           "public reports of kohya's sd-scripts on SD 1.5 (about 6 GB at 512 px, batch 1, fp16)")
_SDXL_MEMORY = MemoryFigures({"denoiser": 2567, "text_encoder": 123, "text_encoder_2": 695, "vae": 84},
                             {"attention": 0.58, "attention_ff": 1.16, "all": 1.95}, 9.0,
                             "public reports of kohya's sd-scripts on SDXL 1.0 (about 12 GB at 1024 px, batch 1, "
                             "bf16, text encoders cached)")
# The 12B transformer, CLIP-L and T5-XXL (frozen, its outputs cached), the 16-channel VAE; the parameter
# and LoRA counts are those of FLUX.1-dev's configs (19 double- and 38 single-stream blocks, width 3072),
# of which 11,834M sit in the blocks' linear layers, what `quantization_bit: 8` stores in 8 bits.
_FLUX_MEMORY = MemoryFigures({"denoiser": 11901, "text_encoder": 123, "text_encoder_2": 4762, "vae": 84},
                             {"attention": 1.63, "attention_ff": 4.09, "all": 5.37, "single_blocks": 2.45}, 12.0,
                             "public reports on Flux.1-dev at 1024 px, batch 1, gradient checkpointing, T5 outputs "
                             "cached (SimpleTuner: a rank-16 LoRA takes a bit more than 30 GB in bf16, 18 GB with "
                             "int8 base weights; ai-toolkit: 24 GB with 8-bit weights)",
                             quantized_m=11834)
# The options that name the other files of a Flux.1 model kept as split files, as ComfyUI keeps it.
FLUX_FILE_OPTIONS = ("clip_l_path", "t5_path", "ae_path", "t5_tokenizer_path")
COMPANION_OPTIONS = FLUX_FILE_OPTIONS  # every family's options that name a base model's other files
_DDPM_OPTIONS = {"prediction_type", "min_snr_gamma", "debiased_estimation_loss", "multires_noise_iterations",
                 "multires_noise_discount"}  # the noise-prediction families' own
# The adapter kinds beyond plain LoRA: SD's and SDXL's files carry them in LyCORIS' keys.
_VARIANT_OPTIONS = {"lora_type", "use_dora"}
# What every image family uses and a language model does not (images, captions, latents, pictures).
_IMAGE_OPTIONS = {"train_data_dir", "metadata_path", "caption_extension", "resolution", "enable_bucket",
                  "min_bucket_reso", "max_bucket_reso", "bucket_reso_steps", "random_flip", "shuffle_caption",
                  "keep_tokens", "caption_dropout_rate", "max_image_pixels", "train_text_encoder", "text_encoder_lr",
                  "noise_offset", "cache_latents", "cache_dir", "cache_text_encoder_outputs", "num_workers",
                  "sample_steps", "sample_guidance_scale", "sample_width", "sample_height", "sample_negative_prompt",
                  "save_precision", "output_name", "channels_last", "torch_compile"}

SD = FamilySpec("sd", "Stable Diffusion 1.x/2.x", "sd", 75, 512, (256, 1024), _SD_MEMORY,
                frozenset({"clip_skip", *_DDPM_OPTIONS, *_VARIANT_OPTIONS, *_IMAGE_OPTIONS}), tiny_variant="sd1")
SDXL = FamilySpec("sdxl", "SDXL", "sdxl", 75, 1024, (512, 2048), _SDXL_MEMORY,
                  frozenset({"train_text_encoder_2", "text_encoder_2_lr", *_DDPM_OPTIONS, *_VARIANT_OPTIONS, *_IMAGE_OPTIONS}),
                  tiny_variant="sdxl")
FLUX = FamilySpec("flux", "Flux.1", "flux", 512, 1024, (512, 2048), _FLUX_MEMORY,
                  frozenset({"guidance_scale", "timestep_sampling", "logit_mean", "logit_std", "mode_scale",
                             "quantization_bit", *FLUX_FILE_OPTIONS, *_IMAGE_OPTIONS}),
                  tiny_variant="flux", token_encoder="T5", quantization_bits=("8",),
                  frozen_encoders=("text_encoder_2",))
# Causal language models (Llama, Mistral, Qwen, Gemma, GLM-4, Phi): trained on text with peft.
# Their memory is estimated from the model's own config.json (trainer.estimate); these figures
# are Llama-3-8B's, for when it is not at hand.
_LLM_MEMORY = MemoryFigures({"denoiser": 8030}, {"attention": 3.4, "attention_ff": 10.5, "all": 10.5}, 2.0,
                            "Llama-3-8B's parameter counts; activations at 1024 tokens, batch 1, bf16")
LLM = FamilySpec("llm", "Language model (LLM)", "llm", 0, 0, (0, 0), _LLM_MEMORY,
                 frozenset({"dataset_path", "dataset_format", "chat_template", "train_on_prompt", "cutoff_len", "packing",
                            "val_size", "eval_steps", "allow_remote_code", "use_dora", "use_rslora",
                            "quantization_bit", "export", "max_new_tokens"}),
                 tiny_variant="llama", token_encoder="", task="text", quantization_bits=("4",))
IMAGE_FAMILIES: tuple[FamilySpec, ...] = (SD, SDXL, FLUX)
FAMILIES: tuple[FamilySpec, ...] = (*IMAGE_FAMILIES, LLM)
FAMILIES_BY_ID: dict[str, FamilySpec] = {spec.id: spec for spec in FAMILIES}
# Options that some family uses and others do not (the form's show/hide rule).
FAMILY_OPTIONS: frozenset[str] = frozenset().union(*(spec.own_options for spec in FAMILIES))


class ModelKindError(ExplainedError):
    """The base model is not one the trainer can train on; the message says what it is."""


@dataclass(frozen=True)
class Detection:
    """What a base model is: its family (when trainable), variant and a phrase for people."""

    family: str  # a FamilySpec id
    variant: str  # "sd1", "sd2", "sdxl"
    what: str  # "an SDXL base model"
    # Options naming the other files this base model needs (a Flux.1 transformer file: its
    # text encoders, VAE and T5 tokenizer), see :func:`companion_problems`.
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
        return _BADGES.get(self.variant, self.spec.label)


# Where people have the files that the options of a split Flux.1 model name.
_COMPANION_KINDS = {
    "clip_l_path": ("clip", "the CLIP-L text encoder", "clip_l.safetensors from ComfyUI's models/clip folder"),
    "t5_path": ("t5", "the T5-XXL text encoder", "t5xxl_fp16.safetensors from ComfyUI's models/clip folder, or "
                "FLUX.1-dev's text_encoder_2 folder"),
    "ae_path": ("flux_vae", "the Flux.1 VAE", "ae.safetensors from ComfyUI's models/vae folder"),
    "t5_tokenizer_path": ("t5_tokenizer", "the T5 tokenizer", "FLUX.1-dev's tokenizer_2 folder, or ComfyUI's "
                          "comfy/text_encoders/t5_tokenizer folder: a folder with tokenizer.json or spiece.model"),
}

_BADGES = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL", "flux": "Flux.1"}


# ------------------------------------------------------------------------------ reading


def read_safetensors_header(path: Path) -> tuple[dict[str, list[int]], dict[str, str]]:
    """Tensor shapes and metadata from a ``.safetensors`` header (raises ValueError when it is not one)."""
    with open(path, "rb") as handle:
        raw = handle.read(8)
        if len(raw) != 8:
            raise ValueError("the file is too short to be a safetensors file")
        (size,) = struct.unpack("<Q", raw)
        if size > MAX_HEADER_BYTES:
            raise ValueError("its header size is implausible")
        header = json.loads(handle.read(size))
    if not isinstance(header, dict):
        raise ValueError("its header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    shapes = {k: list(v.get("shape", [])) for k, v in header.items() if isinstance(v, dict)}
    return shapes, {str(k): str(v) for k, v in metadata.items()}


def detect_family(path: Path | str, *, allow_pickle: bool = False) -> Detection:
    """The family of the base model at ``path`` (a single file or a diffusers folder).

    Raises :class:`ModelKindError` for anything that is not a trainable base model, named
    for what it is. A pickle file (``.ckpt`` ...) cannot be read without unpickling it: with
    ``allow_pickle`` it is taken for SD (its keys are checked again once loaded), else refused.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelKindError(f"base model not found: {path}",
                             "check `base_model`: it must be a .safetensors file or a diffusers folder")
    if path.is_dir():
        return classify_folder(path, allow_pickle=allow_pickle)
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        if allow_pickle:
            return Detection("sd", "sd1", "a pickle checkpoint")
        raise ModelKindError(f"{path.name} is a pickle file ({suffix}), and loading a pickle can run any code hidden in it",
                             "convert it to .safetensors, or set `allow_pickle: true` if you trust where it came from")
    if suffix not in SAFETENSORS_SUFFIXES:
        raise ModelKindError(f"{path.name}: unsupported model file type {suffix or '(no extension)'!r}",
                             "give a .safetensors checkpoint or a diffusers model folder (one with model_index.json)")
    try:
        shapes, _metadata = read_safetensors_header(path)
    except (OSError, ValueError) as exc:
        raise ModelKindError(f"{path.name} could not be read as a safetensors file: {exc}",
                             "the file may be incomplete (an interrupted download?): download it again") from exc
    return classify_keys(shapes, path.name)


# --------------------------------------------------------------------------- companion files


def weight_files(path: Path) -> list[Path]:
    """The safetensors files of a weights option: the file itself, or a folder's (sharded) files."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix.lower() in SAFETENSORS_SUFFIXES)
    return [path]


def _weights_kind(shapes: Mapping[str, Sequence[int]]) -> str:
    """What a weights file is, from its tensor names: clip, t5, flux_vae, vae, flux, other."""
    keys = list(shapes)
    if any(k.endswith("embeddings.token_embedding.weight") for k in keys):
        return "clip"
    if any(".SelfAttention.q.weight" in k for k in keys):
        return "t5"
    conv_in = next((v for k, v in shapes.items() if k.endswith("decoder.conv_in.weight")), None)
    if conv_in is not None and not _has(keys, UNET_PREFIX):
        return "flux_vae" if len(conv_in) == 4 and conv_in[1] == 16 else "vae"
    if any("double_blocks." in k for k in keys):
        return "flux"
    return "other"


_KIND_NAMES = {"clip": "a CLIP text encoder", "t5": "a T5 text encoder", "flux_vae": "a Flux.1 VAE",
               "vae": "a VAE with 4 latent channels (SD's, not Flux.1's 16)", "flux": "a Flux.1 transformer",
               "other": "not a model part this option takes"}


def check_companion(option: str, path: Path) -> None:
    """Raise :class:`ModelKindError` when ``path`` is not the kind of file ``option`` names."""
    kind, what, where = _COMPANION_KINDS[option]
    if not path.exists():
        raise ModelKindError(f"{option}: {path} does not exist", f"give {what}: {where}")
    if kind == "t5_tokenizer":
        if not (path.is_dir() and any((path / name).is_file() for name in ("tokenizer.json", "spiece.model"))):
            raise ModelKindError(f"{option}: {path} is not a tokenizer folder (no tokenizer.json or spiece.model)",
                                 f"give {what}: {where}")
        return
    files = weight_files(path)
    if not files:
        raise ModelKindError(f"{option}: {path} holds no .safetensors files", f"give {what}: {where}")
    shapes: dict[str, list[int]] = {}
    for file in files:
        try:
            shapes.update(read_safetensors_header(file)[0])
        except (OSError, ValueError) as exc:
            raise ModelKindError(f"{option}: {file.name} could not be read as a safetensors file: {exc}",
                                 "the file may be incomplete (an interrupted download?): download it again") from exc
    found = _weights_kind(shapes)
    if found != kind:
        raise ModelKindError(f"{option}: {path.name} is {_KIND_NAMES[found]}, not {what}", f"give {what}: {where}")


def companion_problems(detection: Detection, values: Mapping[str, object]) -> list[tuple[str, str, str]]:
    """(option, message, hint) for each companion file the base model needs that is unset or wrong."""
    problems = []
    for option in detection.companions:
        value = values.get(option)
        _kind, what, where = _COMPANION_KINDS[option]
        if not value:
            problems.append((option, f"is not set: {detection.what} needs {what} as a separate file",
                             f"set {option} to {where}"))
            continue
        try:
            check_companion(option, Path(str(value)).expanduser())
        except ModelKindError as exc:
            problems.append((option, exc.message.removeprefix(f"{option}: "), exc.hint))
    return problems


# --------------------------------------------------------------------------- single files

# kohya (lora_unet_*, .lora_down), PEFT (lora_A/lora_B), old diffusers (to_k_lora.down),
# LyCORIS (hada_w*, lokr_w*, oft_*): no base model has such names.
_LORA_MARKERS = re.compile(r"lora|hada_w|lokr_w|\.oft_", re.IGNORECASE)
_NOT_YET = "LoRA Studio trains Stable Diffusion 1.x/2.x, SDXL and Flux.1 models"


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
        raise ModelKindError(f"{name} is a Stable Diffusion 3 model; SD3 models are not supported yet", _NOT_YET)
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
                             "architecture?)", _NOT_YET)
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


# ------------------------------------------------------------------------- diffusers folders


def classify_folder(folder: Path, *, allow_pickle: bool = False) -> Detection:
    """The family of a model folder: a diffusers pipeline (its ``model_index.json``) or a causal LM
    (its ``config.json``)."""
    index_path = folder / "model_index.json"
    if not index_path.is_file() and (folder / "config.json").is_file():
        detection = _classify_causal_lm(folder, allow_pickle)
        if detection is not None:
            return detection
    if not index_path.is_file():
        files = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in (*SAFETENSORS_SUFFIXES, *PICKLE_SUFFIXES))
        hint = (f"did you mean the file {files[0]}?" if files
                else "give a diffusers model folder (with model_index.json) or a .safetensors checkpoint")
        raise ModelKindError(f"{folder} has no model_index.json, so it is not a diffusers model folder", hint)
    try:
        index = read_json_object(index_path)
    except ValueError as exc:
        raise ModelKindError(str(exc), "the model folder may be damaged") from exc
    pipeline = str(index.get("_class_name", ""))
    if pipeline == "FluxPipeline":
        return Detection("flux", "flux", "a Flux.1 model folder")
    if pipeline.startswith("Flux"):
        raise ModelKindError(f"{folder} is a {pipeline} model (Flux.1 tools such as Fill or Kontext take extra "
                             "inputs); LoRA Studio trains text-to-image Flux.1 models", "give a FluxPipeline folder")
    if pipeline.startswith("StableDiffusion3"):
        raise ModelKindError(f"{folder} is a Stable Diffusion 3 model; SD3 models are not supported yet", _NOT_YET)
    if "Inpaint" in pipeline:
        raise ModelKindError(f"{folder} is an inpainting model ({pipeline})",
                             "choose the text-to-image version of the base model")
    if "XL" in pipeline or "text_encoder_2" in index:
        if index.get("text_encoder", "absent") in (None, [None, None]):  # the refiner says it has none
            raise ModelKindError(f"{folder} is an SDXL refiner, which has only one text encoder and refines "
                                 "finished images", "train LoRAs on an SDXL base model")
        return Detection("sdxl", "sdxl", "an SDXL base model")
    if pipeline and pipeline != "StableDiffusionPipeline":
        raise ModelKindError(f"{folder} is a {pipeline} model folder; {_NOT_YET}",
                             "choose a Stable Diffusion 1.x/2.x or SDXL model")
    return Detection("sd", _sd_folder_variant(folder), "a Stable Diffusion model folder")


def _classify_causal_lm(folder: Path, allow_pickle: bool) -> Detection | None:
    """A causal LM folder's detection; None for a diffusers component (its config names a ``_class_name``)."""
    from trainer.causal_lm_folder import CausalLMRefused, classify_causal_lm, read_model_config

    try:
        if "_class_name" in read_model_config(folder):
            return None
        model_type, what = classify_causal_lm(folder, allow_pickle=allow_pickle)
    except CausalLMRefused as exc:
        raise ModelKindError(exc.message, exc.hint) from exc
    return Detection("llm", model_type, what)


def _sd_folder_variant(folder: Path) -> str:
    try:
        config = json.loads((folder / "unet" / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "sd1"
    if config.get("cross_attention_dim") == 1024 or config.get("use_linear_projection"):
        return "sd2"
    return "sd1"


def resolve_family(detection: Detection, requested: str, where: str) -> FamilySpec:
    """The family to train: what the model is, checked against an explicit `model_family`.

    ``requested`` is "auto" or a family id; a model of another family is refused rather
    than loaded into the wrong code.
    """
    if requested in ("", "auto") or requested == detection.family:
        return detection.spec
    if requested not in FAMILIES_BY_ID:
        raise ModelKindError(f"model_family {requested!r} is not a known family",
                             f"use one of: auto, {', '.join(FAMILIES_BY_ID)}")
    raise ModelKindError(f"{where} is {detection.what}, but model_family says {requested!r}",
                         f"set model_family to auto (or {detection.family})")
