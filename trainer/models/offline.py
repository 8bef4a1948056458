"""Force the Hugging Face libraries into offline mode.

LoRA Studio never talks to the Hugging Face Hub at run time: a training machine may
have no internet, and a silent download (a config, a tokenizer) would make a run depend
on a website. The libraries read their switches from the environment, and
``huggingface_hub`` copies some of them into module constants *at import time*, so
:func:`enable_offline_mode` must run before ``diffusers``/``transformers`` are imported.
It also patches those constants when the libraries were imported first. Code that loads
weights must still pass ``local_files_only=True``: the switches are a second line of
defence, not the only one.

This module is stdlib-only so that it can be imported first, before torch.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# Environment switches, and the value that turns each one on.
OFFLINE_ENV: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",  # huggingface_hub (and thus diffusers): no HTTP at all
    "TRANSFORMERS_OFFLINE": "1",  # transformers' older name for the same switch
    "HF_DATASETS_OFFLINE": "1",  # datasets, should anything pull it in
    "HF_HUB_DISABLE_TELEMETRY": "1",  # no usage pings
    "DISABLE_TELEMETRY": "1",  # diffusers' older name for the telemetry switch
}

# Module constants that huggingface_hub and its users compute from the environment at
# import time; each is patched only in modules that are already imported.
_MODULE_FLAGS = ("HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY")
_LIBRARIES = ("huggingface_hub", "diffusers", "transformers")


def _module_flag(module: object, flag: str) -> object:
    """``flag`` as ``module`` itself holds it, or None.

    Read from the module's own namespace, not with getattr: a lazy module of transformers
    imports a submodule on an unknown attribute (5.17 imported an image processor that needs
    torchvision just to be asked for HF_HUB_OFFLINE).
    """
    return getattr(module, "__dict__", {}).get(flag)  # not every entry of sys.modules is a module


def _imported_library_modules() -> list[object]:
    return [
        module
        for name, module in list(sys.modules.items())
        if module is not None and name.split(".", 1)[0] in _LIBRARIES
    ]


def enable_offline_mode() -> None:
    """Switch the Hugging Face libraries to offline mode for the rest of the process.

    Idempotent and cheap. Call it as early as possible (before importing diffusers or
    transformers); calling it later still works because already-imported constants are
    patched too.
    """
    os.environ.update(OFFLINE_ENV)
    for module in _imported_library_modules():
        for flag in _MODULE_FLAGS:
            if isinstance(_module_flag(module, flag), bool):
                setattr(module, flag, True)


def is_offline_mode_enabled() -> bool:
    """True when every offline switch is set in the environment (and in huggingface_hub)."""
    if any(os.environ.get(name) != value for name, value in OFFLINE_ENV.items()):
        return False
    constants = sys.modules.get("huggingface_hub.constants")
    return constants is None or getattr(constants, "HF_HUB_OFFLINE", True) is True


@contextmanager
def offline_mode() -> Iterator[None]:
    """Enable offline mode inside a ``with`` block and restore the previous state after.

    For tests and for embedding the trainer in a process that does want the Hub later;
    the trainer itself simply calls :func:`enable_offline_mode` once.
    """
    saved_env = {name: os.environ.get(name) for name in OFFLINE_ENV}
    saved_flags = [
        (module, flag, _module_flag(module, flag))
        for module in _imported_library_modules()
        for flag in _MODULE_FLAGS
        if isinstance(_module_flag(module, flag), bool)
    ]
    enable_offline_mode()
    try:
        yield
    finally:
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        for module, flag, value in saved_flags:
            setattr(module, flag, value)
