"""A quick look at the base model before anything is written: is it a model we can train on?

Reads only the file's header (safetensors keys), so a wrong file is refused in
milliseconds, before a run folder is created and before gigabytes are loaded.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from trainer.config import ConfigProblem

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


def safetensors_keys(path: Path) -> list[str]:
    """Tensor names from a safetensors header (raises ValueError when it is not one)."""
    with open(path, "rb") as handle:
        raw = handle.read(8)
        if len(raw) != 8:
            raise ValueError("file is too short")
        (size,) = struct.unpack("<Q", raw)
        if size > 100_000_000:
            raise ValueError("header size is implausible")
        header = json.loads(handle.read(size))
    return [k for k in header if k != "__metadata__"]


_OPTIMIZER_PACKAGES = {"AdamW8bit": "bitsandbytes", "Prodigy": "prodigyopt"}


def check_optimizer(name: str) -> list[ConfigProblem]:
    """The optimizer's extra package must be installed (checked before anything is written)."""
    import importlib.util
    package = _OPTIMIZER_PACKAGES.get(name)
    if package and importlib.util.find_spec(package) is None:
        return [ConfigProblem(f"optimizer {name} needs the {package} package, which is not installed",
                              f"pip install {package} on the training machine, or use optimizer: AdamW",
                              option="optimizer")]
    return []


def check_base_model(path: Path, allow_pickle: bool) -> list[ConfigProblem]:
    """Problems with `base_model` that can be seen without loading it."""
    def problem(message: str, hint: str) -> list[ConfigProblem]:
        return [ConfigProblem(message, hint, option="base_model")]

    if path.is_dir():
        if not (path / "model_index.json").exists() and not (path / "unet").is_dir():
            return problem(f"{path} is a folder but not a diffusers model (no model_index.json)",
                           "point base_model at a diffusers model folder or at a single .safetensors file")
        return []
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        if allow_pickle:
            return []
        return problem(f"{path.name} is a pickle file ({suffix}), and loading a pickle can run any code hidden in it",
                       "convert it to .safetensors, or set `allow_pickle: true` if you trust where it came from")
    if suffix != ".safetensors":
        return problem(f"{path.name} is not a .safetensors file", "use the model's .safetensors file or a diffusers folder")
    try:
        keys = safetensors_keys(path)
    except (OSError, ValueError) as exc:
        return problem(f"{path.name} cannot be read as safetensors ({exc})", "the file may be incomplete: download it again")
    if any(k.startswith("conditioner.embedders") for k in keys):
        return problem(f"{path.name} is an SDXL model, which this trainer does not support yet", "use an SD 1.x or 2.x model")
    if any(k.startswith(("lora_unet_", "lora_te", "unet.")) or ".lora_" in k for k in keys[:50]):
        return problem(f"{path.name} looks like a LoRA, not a base model", "point base_model at the Stable Diffusion checkpoint")
    if not any(k.startswith("model.diffusion_model.") for k in keys):
        return problem(f"{path.name} is not a Stable Diffusion checkpoint (no UNet weights inside)",
                       "use an SD 1.x/2.x checkpoint as used by A1111 or ComfyUI, or a diffusers folder")
    return []
