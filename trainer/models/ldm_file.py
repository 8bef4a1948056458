"""Reading an original LDM (CompVis/SGM) single-file checkpoint: its key layout, pickles
refused unless allowed, and files that are not a base model of the expected family (a LoRA,
a VAE, an SDXL refiner...) named for what they are before any tensor is loaded
(:func:`trainer.model_family.classify_keys` decides). Turning the weights into models is
the family's loader's (:mod:`trainer.models.ldm_single_file`, :mod:`trainer.models.sdxl_single_file`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from trainer.model_family import (CLIP_PREFIX, FAMILIES_BY_ID, OPEN_CLIP_PREFIX, PICKLE_SUFFIXES,
                                  SAFETENSORS_SUFFIXES, SDXL_CLIP_L_PREFIX, SDXL_OPEN_CLIP_PREFIX, UNET_PREFIX,
                                  VAE_PREFIX, ModelKindError, classify_keys, read_safetensors_header)

from .errors import ModelLoadError

Tensor = torch.Tensor

# The tensors each family's loader needs (EMA copies and the like are skipped).
WANTED_PREFIXES = {
    "sd": (UNET_PREFIX, VAE_PREFIX, CLIP_PREFIX, OPEN_CLIP_PREFIX),
    "sdxl": (UNET_PREFIX, VAE_PREFIX, SDXL_CLIP_L_PREFIX, SDXL_OPEN_CLIP_PREFIX),
}


PICKLE_MESSAGE = "{path} is a pickle file ({suffix}); loading a pickle file can run arbitrary code."
PICKLE_HINT = (
    "Convert it to .safetensors (for example with A1111's or kohya's converter), or set "
    "`allow_pickle: true` in the config if you trust where the file came from."
)


@dataclass
class LdmCheckpoint:
    """The raw contents of a single-file checkpoint: its SD weights and its metadata."""

    path: Path
    state_dict: dict[str, Tensor]
    metadata: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- reading


def read_checkpoint(path: Path, *, allow_pickle: bool = False, family: str = "sd") -> LdmCheckpoint:
    """Read the weights a ``family`` loader needs from a single-file checkpoint.

    Raises :class:`ModelLoadError` for pickles without ``allow_pickle``, for unreadable
    files, and for files that are not a base model of ``family`` (named for what they are).
    """
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        return _read_safetensors(path, family)
    if suffix in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise ModelLoadError(PICKLE_MESSAGE.format(path=path, suffix=suffix), PICKLE_HINT)
        return _read_pickle(path, family)
    raise ModelLoadError(
        f"{path}: unsupported model file type {suffix or '(no extension)'!r}.",
        "Give a .safetensors checkpoint or a diffusers model folder (one with model_index.json).",
    )


def _read_safetensors(path: Path, family: str) -> LdmCheckpoint:
    from safetensors import safe_open

    try:
        # Classify from the header first: refusing a LoRA should not load it.
        shapes, _metadata = read_safetensors_header(path)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"{path} could not be read as a safetensors file: {exc}",
            "The file may be incomplete (an interrupted download?) or not a model at all.",
        ) from exc
    check_checkpoint_keys(shapes, path, family)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            state = {k: handle.get_tensor(k) for k in handle.keys() if k.startswith(WANTED_PREFIXES[family])}
    except Exception as exc:  # safetensors raises its own error types for bad data
        raise ModelLoadError(
            f"{path} could not be read as a safetensors file: {exc}",
            "The file may be incomplete (an interrupted download?) or not a model at all.",
        ) from exc
    return LdmCheckpoint(path, state, metadata)


def _read_pickle(path: Path, family: str) -> LdmCheckpoint:
    try:
        # weights_only=False is the point of allow_pickle: old .ckpt files hold
        # PyTorch Lightning objects that the safe unpickler rejects.
        loaded = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ModelLoadError(f"{path} could not be loaded: {exc}", "The file may be incomplete.") from exc
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping):
        raise ModelLoadError(f"{path} does not contain a state dict (found {type(loaded).__name__}).")
    shapes = {k: list(v.shape) for k, v in loaded.items() if isinstance(k, str) and isinstance(v, Tensor)}
    check_checkpoint_keys(shapes, path, family)
    state = {k: loaded[k] for k in shapes if k.startswith(WANTED_PREFIXES[family])}
    return LdmCheckpoint(path, state, {})


def check_checkpoint_keys(shapes: Mapping[str, Sequence[int]], path: Path, family: str = "sd") -> None:
    """Raise :class:`ModelLoadError` unless ``shapes`` (names -> shapes) are a ``family`` checkpoint."""
    try:
        detection = classify_keys(shapes, str(path))
    except ModelKindError as exc:
        raise ModelLoadError(exc.message, exc.hint) from exc
    if detection.family != family:
        raise ModelLoadError(f"{path} is {detection.what}, not a {FAMILIES_BY_ID[family].label} model.",
                             "Leave model_family on auto to load it with its own family.")
