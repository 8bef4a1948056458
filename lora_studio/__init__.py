"""LoRA Studio desktop app (PySide6). Never imports torch: heavy work runs in the trainer."""

from .qt_compat import protect_singletons

# Before any Qt call: see qt_compat for the shiboken6/CPython 3.11 bug this guards against.
protect_singletons()

__version__ = "0.1.0"
APP_NAME = "LoRA Studio"
