"""What every captioner family provides (torch-free: families import torch only when loading)."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image


@dataclass(frozen=True)
class LoadOptions:
    """Everything a family may need to load and run its model."""

    device: str = "cpu"  # "cpu" or "cuda" (already resolved from "auto")
    allow_pickle: bool = False
    cpu_threads: int | None = None  # the model's CPU threads (None: the library's default)
    # Captioners (image-to-text):
    prompt: str | None = None
    max_new_tokens: int = 50
    beams: int = 1
    # Taggers:
    general_threshold: float = 0.35
    character_threshold: float = 0.85
    rating: bool = False
    exclude: frozenset[str] = field(default_factory=frozenset)  # as merge.tag_key() writes them


class Captioner(abc.ABC):
    """A loaded model that turns images into caption parts.

    The work is split so that the model never waits for files: :meth:`prepare` runs in the
    loader's worker threads (decode is done by then; it resizes and normalises one image,
    and must be thread-safe), :meth:`collate` and :meth:`generate` run on the main thread.
    """

    family: str = ""
    name: str = ""
    # The side the model's input is resized to (None: unknown). The loader uses it to
    # decode large JPEGs at a reduced scale that still has at least this many pixels.
    input_side: int | None = None

    @abc.abstractmethod
    def prepare(self, image: Image.Image) -> Any:
        """One image as the model's input (CPU arrays/tensors); thread-safe."""

    @abc.abstractmethod
    def collate(self, prepared: Sequence[Any]) -> Any:
        """Several prepared images as one batch."""

    @abc.abstractmethod
    def generate(self, batch: Any) -> list[list[str]]:
        """Caption parts for each image of the batch: ``[sentence]`` or the tags."""

    def free_memory(self) -> None:
        """Release cached accelerator memory after an out-of-memory error."""

    def close(self) -> None:
        """Release the model."""


@dataclass(frozen=True)
class Family:
    """A kind of captioning model: how to recognise, check and load its folder.

    ``claims`` and ``missing_files`` only look at file names (cheap, no heavy imports), so
    the CLI can check a folder before it imports torch or onnxruntime.
    """

    name: str
    description: str
    required: str  # the files a folder needs, in words, for messages
    claims: Callable[[Path], bool]
    missing_files: Callable[[Path, bool], list[str]]
    load: Callable[[Path, LoadOptions], Captioner]


_OOM_TEXT = ("out of memory", "failed to allocate memory", "cudnn_status_alloc_failed", "cublas_status_alloc_failed")


def is_out_of_memory(exc: BaseException) -> bool:
    """True for the out-of-memory errors of torch (CUDA or CPU) and onnxruntime."""
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    if name == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError, without importing torch here
        return True
    text = str(exc).lower()
    return any(marker in text for marker in _OOM_TEXT)
