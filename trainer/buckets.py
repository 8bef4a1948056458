"""Aspect-ratio buckets: each image trains at a size close to its own shape (torch-free).

Every bucket has about the same pixel area as `resolution`², sides that are multiples of
`step`, and sides within [min_side, max_side]. An image goes to the bucket whose aspect
ratio is closest to its own, is scaled to cover the bucket, and is centre-cropped. The
crop is deterministic so that cached latents stay valid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Bucket:
    """A training size in pixels."""

    width: int
    height: int

    @property
    def aspect(self) -> float:
        return self.width / self.height

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


def make_buckets(resolution: int, min_side: int, max_side: int, step: int) -> list[Bucket]:
    """All buckets of about ``resolution``² pixels with sides in [min_side, max_side]."""
    area = resolution * resolution
    buckets = {Bucket(resolution - resolution % step or step, resolution - resolution % step or step)}
    width = min_side
    while width <= max_side:
        # The largest height (a multiple of step) that keeps the area within the budget.
        height = min(max_side, (area // width) // step * step)
        if height >= min_side:
            buckets.add(Bucket(width, height))
            buckets.add(Bucket(height, width))
        width += step
    return sorted(buckets, key=lambda b: (b.aspect, b.width))


def assign_bucket(width: int, height: int, buckets: list[Bucket]) -> Bucket:
    """The bucket whose aspect ratio is closest to the image's (compared on a log scale)."""
    log_aspect = math.log(width / height)
    return min(buckets, key=lambda b: (abs(math.log(b.aspect) - log_aspect), -b.width * b.height))


def buckets_for(config) -> list[Bucket]:
    """The buckets a config trains with (one square when bucketing is off)."""
    if not config.enable_bucket:
        return [square_bucket(config.resolution)]
    return make_buckets(config.resolution, config.min_bucket_reso, config.max_bucket_reso, config.bucket_reso_steps)


def square_bucket(resolution: int) -> Bucket:
    """The one bucket used when bucketing is off: a centre-cropped square."""
    return Bucket(resolution, resolution)


def cover_and_crop(width: int, height: int, bucket: Bucket) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """Resize size that covers ``bucket`` and the centre crop box (left, top, right, bottom)."""
    scale = max(bucket.width / width, bucket.height / height)
    new_w = max(bucket.width, round(width * scale))
    new_h = max(bucket.height, round(height * scale))
    left = (new_w - bucket.width) // 2
    top = (new_h - bucket.height) // 2
    return (new_w, new_h), (left, top, left + bucket.width, top + bucket.height)


def count_batches(bucket_counts: dict[Bucket, int], batch_size: int) -> int:
    """Batches in one epoch when batches never mix buckets (`bucket_counts`: images with repeats)."""
    return sum(-(-count // batch_size) for count in bucket_counts.values())


@dataclass(frozen=True)
class StepPlan:
    """How many optimizer steps a run makes: per epoch, in all, and over how many epochs."""

    steps_per_epoch: int
    total_steps: int
    epochs: int


def plan_steps(batches: int, accumulation: int, world_size: int, epochs: int, max_train_steps: int | None) -> StepPlan:
    """The step count the trainer uses and the form shows (one function, so they agree).

    One optimizer step takes ``accumulation`` x ``world_size`` batches (every process of a
    multi-GPU run trains on its own batch); a short last group still makes a step.
    """
    if not batches:
        return StepPlan(0, max_train_steps or 0, 0)
    per_epoch = -(-batches // (accumulation * world_size))
    total = max_train_steps or epochs * per_epoch
    return StepPlan(per_epoch, total, -(-total // per_epoch))
