"""A quick look at the base model before anything is written: is it a model we can train on?

Reads only the file's header (safetensors keys and shapes) or a folder's
``model_index.json`` (:mod:`trainer.model_family`), so a wrong file is refused in
milliseconds, before a run folder is created and before gigabytes are loaded.
"""

from __future__ import annotations

from pathlib import Path

from trainer.config import ConfigProblem
from trainer.model_family import ModelKindError, detect_family, resolve_family


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


# `quantization_bit` values: what they load, and the package that does it on a CUDA GPU.
_QUANTIZATION = {"4": ("4 (QLoRA)", "bitsandbytes"), "8": ("8 (8-bit base weights)", "torchao")}


def check_quantization(bits: str, device_type: str | None) -> list[ConfigProblem]:
    """`quantization_bit` needs a CUDA GPU and its package: checked before anything is written.

    ``device_type`` is where the run trains ("cuda" or "cpu"), None where that is not known
    here (`validate` without torch): then only the package is looked for. The CPU is refused
    even where the package would run there: the point is GPU memory, and on the CPU every
    step would only be slower for the rounding.
    """
    if bits not in _QUANTIZATION:
        return []
    what, package = _QUANTIZATION[bits]
    if device_type not in (None, "cuda"):
        return [ConfigProblem(f"quantization_bit {what} needs a CUDA GPU, and this run trains on the CPU",
                              "set quantization_bit to none, or train on a target with an NVIDIA GPU",
                              option="quantization_bit")]
    import importlib.util
    if importlib.util.find_spec(package) is None:
        return [ConfigProblem(f"quantization_bit {what} needs the {package} package, which is not installed",
                              f"pip install {package} on the training machine, or set quantization_bit to none",
                              option="quantization_bit")]
    return []


def check_base_model(path: Path, allow_pickle: bool, model_family: str = "auto") -> list[ConfigProblem]:
    """Problems with `base_model` (and `model_family`) that can be seen without loading it."""
    try:
        resolve_family(detect_family(path, allow_pickle=allow_pickle), model_family, path.name)
    except ModelKindError as exc:
        return [ConfigProblem(exc.message, exc.hint, option="base_model")]
    return []


def check_model_options(config, device_type: str | None = None) -> list[ConfigProblem]:
    """Problems of a loaded config's base model, model family, optimizer and quantization (no model is
    loaded); ``device_type``: where the run trains, when known (see :func:`check_quantization`)."""
    if device_type is None and config.device == "cpu":
        device_type = "cpu"
    return (check_base_model(Path(config.base_model), config.allow_pickle, config.model_family)
            + check_optimizer(config.optimizer) + check_quantization(config.quantization_bit, device_type))
