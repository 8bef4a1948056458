"""LoRA Studio's training engine: a CLI (`python -m trainer`) that trains LoRA adapters.

The package root stays torch-free so that the desktop app can import the shared modules
(`trainer.config`, `trainer.captions`, `trainer.rundir`) without the training libraries.
"""

__version__ = "0.1.0"
