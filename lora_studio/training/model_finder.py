"""The base models a workspace holds, each with its family, for the base-model picker (torch-free).

Only headers are read (a safetensors file's JSON header, a diffusers folder's
``model_index.json``, a language model's ``config.json``), so listing a folder of multi-gigabyte checkpoints on a share takes
moments. Files that are not trainable base models (LoRAs, VAEs, refiners) are left out;
run folders and caches are not searched. Blocking: call it from a worker.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from trainer.model_family import SAFETENSORS_SUFFIXES, Detection, ModelKindError, detect_family

MAX_DEPTH = 4  # workspace/models/Stable-diffusion/sdxl/x.safetensors
MAX_MODELS = 200
_SKIPPED_FOLDERS = {"runs", "checkpoints", "samples", "tb", "node_modules", "__pycache__"}


@dataclass(frozen=True)
class FoundModel:
    """A base model in the workspace and what it is."""

    path: Path
    detection: Detection


def find_base_models(workspace: Path, *, max_depth: int = MAX_DEPTH, limit: int = MAX_MODELS) -> list[FoundModel]:
    """Trainable base models under ``workspace`` (files and diffusers folders): those in its
    ``models/`` folder first (where the demo and A1111-style layouts keep them), each part by path."""
    found: list[FoundModel] = []
    root_depth = len(Path(workspace).parts)
    for folder, subfolders, files in os.walk(workspace):
        here = Path(folder)
        # A diffusers folder's parts, or a language model's shards, are not models of their own.
        if "model_index.json" in files:
            _add(found, here)
            subfolders[:] = []
            continue
        if "config.json" in files and _add(found, here):
            subfolders[:] = []
            continue
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".") and d not in _SKIPPED_FOLDERS
                               and len(here.parts) - root_depth < max_depth)
        for name in sorted(files):
            if name.lower().endswith(SAFETENSORS_SUFFIXES):
                _add(found, here / name)
        if len(found) >= limit:
            break
    models = Path(workspace) / "models"
    return sorted(found[:limit], key=lambda model: (not model.path.is_relative_to(models), str(model.path).lower()))


def _add(found: list[FoundModel], path: Path) -> bool:
    """Add ``path`` when it is a trainable base model; returns whether it was."""
    try:
        found.append(FoundModel(path, detect_family(path)))
    except (ModelKindError, OSError):
        return False  # a LoRA, a VAE, a refiner or an unreadable file: not a choice for base_model
    return True


# Where ComfyUI keeps a split Flux.1 or SD3 model's other parts, relative to its models/ folder
# (or to the checkpoint's own folder, as Stability AI's SD3.5 repositories have text_encoders/ beside
# the checkpoint), and the names people download them under (the first that fits is taken).
_COMPANION_PLACES = {
    "clip_l_path": (("clip", "text_encoders"), ("clip_l*.safetensors",)),
    "clip_g_path": (("clip", "text_encoders"), ("clip_g*.safetensors",)),
    "t5_path": (("clip", "text_encoders"), ("t5xxl_fp16*.safetensors", "t5xxl*.safetensors")),
    "ae_path": (("vae",), ("ae*.safetensors", "*flux*.safetensors")),
    "t5_tokenizer_path": (("", "clip", "text_encoders"), ("t5_tokenizer", "tokenizer_2", "tokenizer_3")),
}


def find_companions(model: Path, wanted: tuple[str, ...]) -> dict[str, Path]:
    """The files a split model's ``wanted`` options name, found in ComfyUI's folders beside it
    (``models/unet/flux1-dev.safetensors`` -> ``models/clip/clip_l.safetensors`` ...) or in the
    model's own folder (``sd3.5_large.safetensors`` -> ``text_encoders/clip_g.safetensors``). Each
    candidate is checked by its header; blocking: call it from a worker."""
    from trainer.model_family import ModelKindError, check_companion

    roots = (model.parent.parent, model.parent)
    found: dict[str, Path] = {}
    for option in wanted:
        folders, patterns = _COMPANION_PLACES.get(option, ((), ()))
        candidates = (path for root in roots for folder in folders for pattern in patterns
                      for path in sorted((root / folder).glob(pattern)))
        for path in candidates:
            try:
                check_companion(option, path)
            except (ModelKindError, OSError):
                continue
            found[option] = path
            break
    return found
