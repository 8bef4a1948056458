"""Model families for the trainer: loading base models offline, tiny test models, pipelines.

:func:`load_base_model` loads any registered family's model (the family comes from the
files, see :mod:`trainer.model_family`); :class:`DiffusionModel` is what it returns.

Importing this package switches the Hugging Face libraries to offline mode (see
:mod:`trainer.models.offline`); LoRA Studio never downloads at run time. The public names
below are imported lazily, so that ``trainer.models.errors`` and ``.offline`` stay cheap
to import (no torch, no diffusers) for code that only needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ModelLoadError
from .offline import enable_offline_mode, offline_mode

enable_offline_mode()

if TYPE_CHECKING:
    from .family import DiffusionModel, load_base_model
    from .pipeline import build_pipeline
    from .sd import SDModel, load_sd_model
    from .tiny import TinyModelPaths, make_tiny_model

__all__ = [
    "DiffusionModel",
    "ModelLoadError",
    "SDModel",
    "TinyModelPaths",
    "build_pipeline",
    "enable_offline_mode",
    "load_base_model",
    "load_sd_model",
    "make_tiny_model",
    "offline_mode",
]

_LAZY = {
    "DiffusionModel": "family",
    "load_base_model": "family",
    "SDModel": "sd",
    "load_sd_model": "sd",
    "TinyModelPaths": "tiny",
    "make_tiny_model": "tiny",
    "build_pipeline": "pipeline",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module_name}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value
