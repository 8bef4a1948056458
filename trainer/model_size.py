"""How many parameters each part of a base model has, counted from its files' headers (torch-free).

The memory estimate (:mod:`trainer.estimate`) has each family's full-size counts; a checkpoint
says what it really holds. A safetensors header lists every tensor's shape, so the count costs
one small read per file, no weights. Parts are named as the families' ``params_m`` name them
(``denoiser``, ``text_encoder`` …, ``vae``): a diffusers folder by its subfolders, a single
file by the key prefixes of its layout. A part that cannot be counted (a pickle ``.bin``, a
part the file does not hold, such as a Flux.1 transformer file's text encoders) is left out,
and the estimate keeps the family's figure for it.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

from trainer.model_family import SAFETENSORS_SUFFIXES, read_safetensors_header
from trainer.model_keys import (CLIP_PREFIX, OPEN_CLIP_PREFIX, SD3_ENCODER_PREFIXES, SDXL_CLIP_L_PREFIX,
                                SDXL_OPEN_CLIP_PREFIX, UNET_PREFIX, VAE_PREFIX)

# Key prefixes of the single-file layouts (SD 1/2, SDXL, SD3, ComfyUI's Flux.1) and the part each holds.
_FILE_PARTS: tuple[tuple[str, str], ...] = (
    (UNET_PREFIX, "denoiser"), (VAE_PREFIX, "vae"), (CLIP_PREFIX, "text_encoder"), (OPEN_CLIP_PREFIX, "text_encoder"),
    (SDXL_CLIP_L_PREFIX, "text_encoder"), (SDXL_OPEN_CLIP_PREFIX, "text_encoder_2"),
    (SD3_ENCODER_PREFIXES["clip_l_path"], "text_encoder"), (SD3_ENCODER_PREFIXES["clip_g_path"], "text_encoder_2"),
    (SD3_ENCODER_PREFIXES["t5_path"], "text_encoder_3"),
)
# A bare Flux.1 transformer file (black-forest-labs' layout): all of it is the denoiser.
_BARE_TRANSFORMER_KEYS = ("double_blocks.", "single_blocks.")
# Subfolders of a diffusers pipeline, by the part they hold.
_FOLDER_PARTS = {"unet": "denoiser", "transformer": "denoiser", "vae": "vae", "text_encoder": "text_encoder",
                 "text_encoder_2": "text_encoder_2", "text_encoder_3": "text_encoder_3"}


def parts_params_m(path: Path | str) -> dict[str, float]:
    """Millions of parameters of each part found in the base model at ``path`` ({} when none can be counted)."""
    path = Path(path).expanduser()
    counts = _folder_counts(path) if path.is_dir() else _file_parts(path)
    return {part: count / 1e6 for part, count in sorted(counts.items()) if count}


def _header(path: Path) -> dict[str, list[int]] | None:
    """The tensor shapes in a safetensors file's header (None when it cannot be read)."""
    try:
        stat = path.stat()
        return dict(_cached_header(str(path), stat.st_mtime_ns, stat.st_size))
    except (OSError, ValueError):
        return None  # the model check says what is wrong with it


@lru_cache(maxsize=64)
def _cached_header(path: str, _mtime_ns: int, _size: int) -> tuple[tuple[str, list[int]], ...]:
    # Per file and version: the form asks again on every edit, and the files rarely change.
    shapes, _metadata = read_safetensors_header(Path(path))
    return tuple(shapes.items())


def _file_parts(path: Path) -> dict[str, int]:
    shapes = _header(path) if path.suffix.lower() in SAFETENSORS_SUFFIXES else None
    if not shapes:
        return {}
    counts: dict[str, int] = {}
    bare = any(key.startswith(_BARE_TRANSFORMER_KEYS) for key in shapes)
    for key, shape in shapes.items():
        part = "denoiser" if bare else next((name for prefix, name in _FILE_PARTS if key.startswith(prefix)), None)
        if part is not None:
            counts[part] = counts.get(part, 0) + math.prod(shape)
    return counts


def _variant(name: str) -> str:
    """diffusers' weight variant of a file name: ``fp16`` of ``diffusion_pytorch_model.fp16-00001-of-00002.safetensors``."""
    pieces = name.split(".")
    return pieces[1].split("-")[0] if len(pieces) == 3 else ""


def _folder_counts(folder: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for subfolder, part in _FOLDER_PARTS.items():
        files = sorted(p for p in (folder / subfolder).glob("*") if p.suffix.lower() in SAFETENSORS_SUFFIXES)
        # A folder may hold the same weights twice (plain and fp16): count one variant's files only.
        files = [p for p in files if _variant(p.name) == min((_variant(f.name) for f in files), default="")]
        headers = [_header(file) for file in files]
        if headers and all(headers):  # one unreadable shard would make the count short
            counts[part] = sum(math.prod(shape) for shapes in headers for shape in shapes.values())
    return counts
