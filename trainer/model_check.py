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


def check_base_model(path: Path, allow_pickle: bool, model_family: str = "auto") -> list[ConfigProblem]:
    """Problems with `base_model` (and `model_family`) that can be seen without loading it."""
    try:
        resolve_family(detect_family(path, allow_pickle=allow_pickle), model_family, path.name)
    except ModelKindError as exc:
        return [ConfigProblem(exc.message, exc.hint, option="base_model")]
    return []


def check_model_options(config) -> list[ConfigProblem]:
    """Problems of a loaded config's base model, model family and optimizer (no model is loaded)."""
    return (check_base_model(Path(config.base_model), config.allow_pickle, config.model_family)
            + check_optimizer(config.optimizer))
