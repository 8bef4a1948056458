"""Which model family a base model belongs to, told from its files alone (torch-free).

A family is one kind of base model the trainer can train a LoRA for (SD 1.x/2.x, SDXL, Flux.1,
SD3/3.5, causal language models). Its facts (token limit, usual resolution, memory constants,
own options) are the family table's (:mod:`trainer.family_specs`); the rules that tell a
single file's family from its tensor names are :mod:`trainer.model_keys`'. This module reads
what they need from disk, and re-exports both, so callers import one module. The trainer's
implementation of each family is a module under ``trainer.models`` (named by
:attr:`FamilySpec.implementation`).

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
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path

from trainer.family_specs import (COMPANION_OPTIONS, FAMILIES, FAMILIES_BY_ID, FAMILY_OPTIONS, FLUX,
                                  FLUX_FILE_OPTIONS, IMAGE_FAMILIES, LLM, SD, SD3, SD3_FILE_OPTIONS, SDXL, FamilySpec,
                                  MemoryFigures)
from trainer.fsutil import read_json_object
from trainer.model_keys import (BADGES, CLIP_PREFIX, NOT_YET, OPEN_CLIP_PREFIX, SD_TEXT_PREFIXES, SDXL_CLIP_L_PREFIX,
                                SDXL_OPEN_CLIP_PREFIX, SDXL_REFINER_PREFIX, UNET_PREFIX, VAE_PREFIX, Detection,
                                ModelKindError, classify_keys, sd3_variant)

__all__ = ["CLIP_PREFIX", "COMPANION_OPTIONS", "FAMILIES", "FAMILIES_BY_ID", "FAMILY_OPTIONS", "FLUX",
           "FLUX_FILE_OPTIONS", "IMAGE_FAMILIES", "LLM", "OPEN_CLIP_PREFIX", "PICKLE_SUFFIXES", "SAFETENSORS_SUFFIXES",
           "SD", "SD3", "SD3_FILE_OPTIONS", "SDXL", "SDXL_CLIP_L_PREFIX", "SDXL_OPEN_CLIP_PREFIX", "SDXL_REFINER_PREFIX",
           "SD_TEXT_PREFIXES", "UNET_PREFIX", "VAE_PREFIX", "Detection", "FamilySpec", "MemoryFigures",
           "ModelKindError", "check_companion", "classify_folder", "classify_keys", "companion_problems",
           "detect_family", "read_safetensors_header", "resolve_family", "weight_files"]

SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
MAX_HEADER_BYTES = 100_000_000

# Where people have the files that the options of a split Flux.1 or SD3 model name.
_COMPANION_KINDS = {
    "clip_l_path": ("clip", "the CLIP-L text encoder", "clip_l.safetensors from ComfyUI's models/clip folder"),
    "clip_g_path": ("clip", "the CLIP-G (OpenCLIP bigG) text encoder", "clip_g.safetensors from ComfyUI's "
                    "models/clip folder (SD3.5's text_encoders/clip_g.safetensors)"),
    "t5_path": ("t5", "the T5-XXL text encoder", "t5xxl_fp16.safetensors from ComfyUI's models/clip folder, or "
                "a diffusers model's T5 folder (FLUX.1-dev's text_encoder_2, SD3's text_encoder_3)"),
    "ae_path": ("flux_vae", "the Flux.1 VAE", "ae.safetensors from ComfyUI's models/vae folder"),
    "t5_tokenizer_path": ("t5_tokenizer", "the T5 tokenizer", "FLUX.1-dev's tokenizer_2 or SD3's tokenizer_3 folder, "
                          "or ComfyUI's comfy/text_encoders/t5_tokenizer folder: a folder with tokenizer.json or "
                          "spiece.model"),
}


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
    """What a weights file is, from its tensor names: clip, t5, flux_vae, vae, flux, sd3, other."""
    keys = list(shapes)
    # A whole model first: an SD3 checkpoint bundles CLIP and T5 too.
    if any("double_blocks." in k for k in keys):
        return "flux"
    if any("joint_blocks." in k for k in keys):
        return "sd3"
    if any(k.endswith("embeddings.token_embedding.weight") for k in keys):
        return "clip"
    if any(".SelfAttention.q.weight" in k for k in keys):
        return "t5"
    conv_in = next((v for k, v in shapes.items() if k.endswith("decoder.conv_in.weight")), None)
    if conv_in is not None and not any(k.startswith(UNET_PREFIX) for k in keys):
        return "flux_vae" if len(conv_in) == 4 and conv_in[1] == 16 else "vae"
    return "other"


_KIND_NAMES = {"clip": "a CLIP text encoder", "t5": "a T5 text encoder", "flux_vae": "a Flux.1 VAE",
               "vae": "a VAE with 4 latent channels (SD's, not Flux.1's 16)", "flux": "a Flux.1 transformer",
               "sd3": "a Stable Diffusion 3 checkpoint", "other": "not a model part this option takes"}


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
    if {"clip_l_path", "clip_g_path"} <= set(detection.companions) and not problems:
        problems += _clip_order_problems(Path(str(values["clip_l_path"])), Path(str(values["clip_g_path"])))
    return problems


def clip_width(path: Path) -> int:
    """The width of a CLIP text encoder's file (its token embedding's), from the header; 0 when unknown."""
    shapes: dict[str, list[int]] = {}
    for file in weight_files(path.expanduser()):
        shapes.update(read_safetensors_header(file)[0])
    return next((int(v[1]) for k, v in shapes.items() if k.endswith("embeddings.token_embedding.weight")
                 and len(v) == 2), 0)


def _clip_order_problems(clip_l: Path, clip_g: Path) -> list[tuple[str, str, str]]:
    # Both are CLIP files, so their kinds cannot tell them apart; CLIP-G (1280 wide) is wider than CLIP-L (768),
    # and the two swapped would still load (the widths add up the same) but condition the model wrongly.
    l_width, g_width = clip_width(clip_l), clip_width(clip_g)
    if l_width and g_width and l_width >= g_width:
        return [("clip_g_path", f"{clip_g.name} is {g_width} wide and clip_l_path's {clip_l.name} {l_width}: "
                 "CLIP-G is the wider one, so the two look swapped", "swap clip_l_path and clip_g_path")]
    return []


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
    if pipeline == "StableDiffusion3Pipeline":
        variant = _sd3_folder_variant(folder)
        return Detection("sd3", variant, f"an {BADGES[variant]} model folder")
    if pipeline.startswith("StableDiffusion3"):
        raise ModelKindError(f"{folder} is a {pipeline} model (SD3's image-to-image, inpainting and ControlNet "
                             "pipelines take extra inputs); LoRA Studio trains text-to-image SD3 models",
                             "give a StableDiffusion3Pipeline folder")
    if "Inpaint" in pipeline:
        raise ModelKindError(f"{folder} is an inpainting model ({pipeline})",
                             "choose the text-to-image version of the base model")
    if "XL" in pipeline or "text_encoder_2" in index:
        if index.get("text_encoder", "absent") in (None, [None, None]):  # the refiner says it has none
            raise ModelKindError(f"{folder} is an SDXL refiner, which has only one text encoder and refines "
                                 "finished images", "train LoRAs on an SDXL base model")
        return Detection("sdxl", "sdxl", "an SDXL base model")
    if pipeline and pipeline != "StableDiffusionPipeline":
        raise ModelKindError(f"{folder} is a {pipeline} model folder; {NOT_YET}",
                             "choose a Stable Diffusion 1.x/2.x, SDXL, Flux.1 or SD3 model")
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


def _sd3_folder_variant(folder: Path) -> str:
    """SD3's variant from its transformer's config (:func:`trainer.model_keys.sd3_variant`); SD3.5 Large
    when the config cannot be read (the loader then says what is wrong with it)."""
    try:
        config = read_json_object(folder / "transformer" / "config.json")
    except ValueError:
        return "sd3.5-large"
    return sd3_variant(bool(config.get("qk_norm")), bool(config.get("dual_attention_layers")))


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
