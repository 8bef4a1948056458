"""Decode and prepare images in worker threads, ahead of the model (torch-free).

Pillow and the processors release the GIL for most of their work, so a few threads keep a
GPU fed. Results come back in the order of the input; an image that cannot be read comes
back with its problem instead of aborting the job.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.images import DEFAULT_MAX_IMAGE_PIXELS, ImageProblem, open_rgb

# Decoding a 2048 px JPEG and preparing it takes one core ~35 ms even at reduced scale, so
# a GPU that captions 100+ images/s needs several decoding threads; beyond 8 the GIL-bound
# parts of the processors stop scaling.
MAX_WORKERS = 8


@dataclass
class Loaded:
    """One image, ready for the model, or the reason it cannot be used."""

    index: int
    rel_path: str
    prepared: Any = None
    problem: ImageProblem | None = None


def default_workers(device: str = "cpu") -> int:
    """Loader threads: up to :data:`MAX_WORKERS`.

    On a GPU the main thread mostly waits for the device, so every core can decode; on the
    CPU the model needs the cores too, so one is left to it.
    """
    cores = os.cpu_count() or 2
    return max(1, min(MAX_WORKERS, cores if device == "cuda" else cores - 1))


def model_threads(workers: int) -> int:
    """CPU threads for the model when it runs on the CPU: the cores the loader leaves free.

    Without a limit torch and onnxruntime start a thread per core, and their spinning
    threads fight the loader's for the same cores (several times slower on small machines).
    """
    return max(1, (os.cpu_count() or 2) - workers)


class PrefetchLoader:
    """Iterate over prepared images while the next ones are being decoded.

    ``lookahead`` bounds the memory held: at most that many images are decoded ahead of
    the one the caller is working on.
    """

    def __init__(
        self,
        images: Sequence[tuple[str, Path]],
        prepare: Callable[[Any], Any],
        workers: int | None = None,
        lookahead: int = 32,
        max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
        min_side: int | None = None,
    ) -> None:
        self.images = list(images)
        self.prepare = prepare
        self.workers = workers or default_workers()
        self.lookahead = max(lookahead, self.workers)
        self.max_pixels = max_pixels
        self.min_side = min_side  # see trainer.images.open_rgb: faster decoding of big JPEGs
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque[Future[Loaded]] = deque()

    def _load(self, index: int) -> Loaded:
        rel, path = self.images[index]
        try:
            image = open_rgb(path, self.max_pixels, self.min_side)
            return Loaded(index, rel, prepared=self.prepare(image))
        except ImageProblem as exc:
            return Loaded(index, rel, problem=exc)
        except Exception as exc:  # noqa: BLE001 - a processor choking on one image must not end the job
            return Loaded(index, rel, problem=ImageProblem(
                path, f"cannot be prepared for the model ({type(exc).__name__}: {exc})",
                "re-export it as an ordinary RGB PNG or JPEG, or leave it out"))

    def __iter__(self) -> Iterator[Loaded]:
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="label-load")
        next_index = 0
        try:
            while True:
                while next_index < len(self.images) and len(self._pending) < self.lookahead:
                    self._pending.append(self._pool.submit(self._load, next_index))
                    next_index += 1
                if not self._pending:
                    return
                yield self._pending.popleft().result()
        finally:
            self.close()

    def close(self) -> None:
        """Drop what is queued and wait for the threads (a stop must not leave them running)."""
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
