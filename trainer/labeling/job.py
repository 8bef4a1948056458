"""The labelling loop: batches through the captioner, out-of-memory back-off, stop requests.

Nothing here writes files: results go to callbacks, so the CLI decides about the run
directory and the caption file, and tests can drive the loop with a fake captioner.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from trainer.images import ImageProblem
from trainer.labeling.base import Captioner, is_out_of_memory
from trainer.labeling.errors import LabelFailure
from trainer.labeling.loader import Loaded, PrefetchLoader
from trainer.labeling.merge import Mode, merge_caption

log = logging.getLogger("trainer.label")


@dataclass(frozen=True)
class WorkItem:
    """An image to caption and the caption it had when the job started."""

    rel_path: str
    path: Path
    old: str | None


@dataclass(frozen=True)
class Result:
    """What the job made of one image."""

    rel_path: str
    old: str | None
    new: str | None  # None: the image keeps its caption (e.g. the model said nothing)
    generated: list[str]


@dataclass
class JobOutcome:
    """Everything the loop did."""

    results: list[Result] = field(default_factory=list)
    skipped: list[ImageProblem] = field(default_factory=list)
    stopped: bool = False
    batch_size: int = 0
    seconds: float = 0.0

    @property
    def done(self) -> int:
        """Images finished (captioned or skipped)."""
        return len(self.results) + len(self.skipped)


class LabelJob:
    """Caption ``items`` with ``captioner``; see :meth:`run`."""

    def __init__(
        self,
        captioner: Captioner,
        items: Sequence[WorkItem],
        mode: Mode | str = Mode.FILL,
        trigger: str | None = None,
        batch_size: int = 8,
        workers: int | None = None,
        stop_requested: Callable[[], bool] = lambda: False,
        on_result: Callable[[Result], None] = lambda result: None,
        on_skip: Callable[[ImageProblem], None] = lambda problem: None,
        on_batch: Callable[[JobOutcome], None] = lambda outcome: None,
    ) -> None:
        self.captioner = captioner
        self.items = list(items)
        self.mode = Mode(mode)
        self.trigger = trigger
        self.batch_size = max(1, batch_size)
        self.workers = workers
        self.stop_requested = stop_requested
        self.on_result = on_result
        self.on_skip = on_skip
        self.on_batch = on_batch
        self.outcome = JobOutcome(batch_size=self.batch_size)

    def run(self) -> JobOutcome:
        """Caption every item until done or stopped; returns what was done.

        Unreadable images are skipped and reported through ``on_skip``. A stop request is
        honoured between batches: the batch in the model finishes and is kept.
        """
        started = time.perf_counter()
        loader = PrefetchLoader([(item.rel_path, item.path) for item in self.items], self.captioner.prepare,
                                workers=self.workers, lookahead=max(4 * self.batch_size, 16),
                                min_side=self.captioner.input_side)
        pending: list[Loaded] = []
        try:
            for loaded in loader:
                if self.stop_requested():
                    self.outcome.stopped = True
                    break
                if loaded.problem is not None:
                    self.outcome.skipped.append(loaded.problem)
                    self.on_skip(loaded.problem)
                else:
                    pending.append(loaded)
                if len(pending) >= self.batch_size:
                    self._run_batch(pending)
                    pending = []
            if pending and not self.outcome.stopped:
                self._run_batch(pending)
        finally:
            loader.close()
            self.outcome.seconds = time.perf_counter() - started
            self.outcome.batch_size = self.batch_size
        return self.outcome

    def _run_batch(self, batch: list[Loaded]) -> None:
        captions = self._generate(batch)
        for loaded, parts in zip(batch, captions):
            item = self.items[loaded.index]
            new = merge_caption(item.old, parts, self.mode, self.trigger) if parts else None
            result = Result(item.rel_path, item.old, new, parts)
            self.outcome.results.append(result)
            self.on_result(result)
        self.on_batch(self.outcome)

    def _generate(self, batch: list[Loaded]) -> list[list[str]]:
        """Run the model; on out-of-memory halve the batch (for the rest of the job too) and retry."""
        try:
            return self.captioner.generate(self.captioner.collate([loaded.prepared for loaded in batch]))
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            self.captioner.free_memory()
            if len(batch) == 1:
                raise LabelFailure(
                    "out of memory with a single image per batch",
                    "close other programs using the GPU, use a smaller captioner, or run with --device cpu",
                ) from exc
            half = len(batch) // 2
            self.batch_size = min(self.batch_size, half)
            log.warning("out of memory with %d images per batch; retrying with %d", len(batch), half)
            return self._generate(batch[:half]) + self._generate(batch[half:])
