"""Training data: the sample list, a resumable batch order, and image tensors.

The batch order of an epoch is a pure function of (seed, epoch), so a resumed run can
rebuild it and continue at the exact batch it stopped at: no data-loader state to save.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from trainer.buckets import Bucket, assign_bucket, buckets_for, count_batches, cover_and_crop
from trainer.images import image_size, open_rgb


@dataclass(frozen=True)
class Sample:
    """One training image with its caption and bucket (repeats are expanded in batches)."""

    image_path: Path
    caption: str
    bucket: Bucket
    repeats: int
    folder: str  # the dataset sub-folder it came from, for `ss_tag_frequency`
    size: tuple[int, int] = (0, 0)  # the image's width and height as used (EXIF rotation applied)


@dataclass(frozen=True)
class ImageGeometry:
    """Where a training image came from: SDXL conditions on it (its ``time_ids``); others ignore it.

    All pairs are (height, width) / (top, left), in pixels, as SDXL's micro-conditioning has them.
    """

    original: tuple[int, int]  # the image's own size
    crop_top_left: tuple[int, int]  # the crop's corner in the resized image
    target: tuple[int, int]  # the bucket's size


@dataclass(frozen=True)
class BatchEntry:
    """One image of a batch: which sample, and whether it is mirrored this time."""

    index: int
    flip: bool


def build_samples(items, config) -> list[Sample]:
    """Samples from a dataset scan's items, each assigned to its bucket."""
    buckets = buckets_for(config)
    samples = []
    for item in items:
        width, height = image_size(item.image_path)
        folder = item.rel_path.rsplit("/", 1)[0] if "/" in item.rel_path else ""
        samples.append(Sample(Path(item.image_path), item.caption or "", assign_bucket(width, height, buckets),
                              item.repeats, folder, (width, height)))
    return samples


def image_geometry(sample: Sample, flip: bool) -> ImageGeometry:
    """The sample's original size, crop corner and target size, as :func:`load_image_tensor` crops it.

    A mirrored image's crop is mirrored too: its left edge is the unmirrored crop's right edge
    seen from the other side (sd-scripts does the same for SDXL's crop conditioning).
    """
    width, height = sample.size
    (new_w, _new_h), (left, top, right, _bottom) = cover_and_crop(width, height, sample.bucket)
    if flip:
        left = new_w - right
    return ImageGeometry(original=(height, width), crop_top_left=(top, left),
                         target=(sample.bucket.height, sample.bucket.width))


def epoch_batches(samples: list[Sample], batch_size: int, seed: int, epoch: int, random_flip: bool) -> list[list[BatchEntry]]:
    """The batches of ``epoch``: each image `repeats` times, batches never mix buckets.

    Deterministic in (seed, epoch): shuffles inside each bucket, cuts batches, then
    shuffles the order of the batches.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    by_bucket: dict[Bucket, list[int]] = defaultdict(list)
    for index, sample in enumerate(samples):
        by_bucket[sample.bucket].extend([index] * sample.repeats)
    batches: list[list[BatchEntry]] = []
    for bucket in sorted(by_bucket):
        indices = by_bucket[bucket]
        rng.shuffle(indices)
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            batches.append([BatchEntry(i, random_flip and rng.random() < 0.5) for i in chunk])
    rng.shuffle(batches)
    return batches


def batches_per_epoch(samples: list[Sample], batch_size: int) -> int:
    """How many batches one epoch has (the same for every epoch)."""
    per_bucket: dict[Bucket, int] = defaultdict(int)
    for sample in samples:
        per_bucket[sample.bucket] += sample.repeats
    return count_batches(per_bucket, batch_size)


def load_image_tensor(sample: Sample, flip: bool, max_pixels: int) -> torch.Tensor:
    """The sample's image, resized to cover its bucket, centre-cropped, in [-1, 1], CHW."""
    image = open_rgb(sample.image_path, max_pixels=max_pixels)
    size, box = cover_and_crop(image.width, image.height, sample.bucket)
    image = image.resize(size, Image.Resampling.LANCZOS).crop(box)
    if flip:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def process_caption(caption: str, *, shuffle: bool, keep_tokens: int, dropout_rate: float, rng: random.Random) -> str:
    """The caption as trained this step: maybe dropped, maybe with its tags shuffled."""
    if dropout_rate and rng.random() < dropout_rate:
        return ""
    if not shuffle:
        return caption
    tags = [t.strip() for t in caption.split(",") if t.strip()]
    head, tail = tags[:keep_tokens], tags[keep_tokens:]
    rng.shuffle(tail)
    return ", ".join(head + tail)


class ImageBatchDataset(torch.utils.data.Dataset):
    """Loads the images of whole batches in data-loader workers (used when latents are not cached)."""

    def __init__(self, samples: list[Sample], batches: list[list[BatchEntry]], max_pixels: int) -> None:
        self.samples = samples
        self.batches = batches
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.stack([load_image_tensor(self.samples[e.index], e.flip, self.max_pixels) for e in self.batches[index]])


def image_loader(samples: list[Sample], batches: list[list[BatchEntry]], start: int, cfg, *,
                 pin_memory: bool = False):
    """Iterator over image batches from `start`, loaded by background workers (into page-locked
    memory with ``pin_memory``, so that the copy to a GPU can overlap the step)."""
    dataset = ImageBatchDataset(samples, batches[start:], cfg.max_image_pixels)
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False, num_workers=cfg.num_workers,
                                         persistent_workers=False, pin_memory=pin_memory)
    return iter(loader)


def batch_positions(group: int, n_batches: int, accumulation: int, world_size: int, rank: int) -> list[int]:
    """Which batches of the epoch ``rank`` trains on in optimizer step ``group``.

    One step takes ``accumulation`` x ``world_size`` consecutive batches; rank r takes every
    world_size-th of them. With several ranks a short last group wraps round to the epoch's
    first batches, so every rank has work (as DistributedSampler pads).
    """
    positions = [group * accumulation * world_size + m * world_size + rank for m in range(accumulation)]
    if world_size == 1:
        return [p for p in positions if p < n_batches]
    return [p % n_batches for p in positions]
