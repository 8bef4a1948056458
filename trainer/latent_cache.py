"""The latent cache: each image is encoded by the VAE once, then reused every epoch.

The disk cache is keyed by the image's *content* (sha256), its bucket, the flip and the
VAE's identity, so an edited image, a changed bucket or another base model's VAE can never
be served a stale latent (a long-standing complaint about kohya's cache). Hashing every
image on each start would read the whole data set, so content hashes are remembered per
(path, size, mtime) in `hashes.json`; a changed file gets a new mtime and is hashed again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save as safetensors_bytes

from trainer.data import Sample
from trainer.fsutil import atomic_write_bytes, atomic_write_text

log = logging.getLogger("trainer")

HASH_INDEX = "hashes.json"


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes (read in blocks; images can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ContentHashes:
    """sha256 of image files, remembered per (path, size, mtime) across runs."""

    def __init__(self, index_path: Path | None) -> None:
        self.index_path = index_path
        self._known: dict[str, str] = {}
        self._dirty = False
        if index_path is not None and index_path.exists():
            try:
                self._known = json.loads(index_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self._known = {}  # a damaged index only costs re-hashing

    def of(self, path: Path) -> str:
        """The content hash of ``path`` (computed only when the file changed)."""
        stat = os.stat(path)
        key = f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}"
        digest = self._known.get(key)
        if digest is None:
            digest = file_sha256(path)
            self._known[key] = digest
            self._dirty = True
        return digest

    def save(self) -> None:
        """Write the index back when new hashes were computed."""
        if self.index_path is not None and self._dirty:
            atomic_write_text(self.index_path, json.dumps(self._known))
            self._dirty = False


@dataclass(frozen=True)
class LatentStats:
    """The VAE's latent distribution of one image: training samples `mean + std * noise`."""

    mean: torch.Tensor
    std: torch.Tensor


class LatentCache:
    """Latents in memory, optionally backed by one small safetensors file per entry on disk."""

    def __init__(self, vae_identity: str, cache_dir: Path | None) -> None:
        self.vae_identity = vae_identity
        self.cache_dir = cache_dir
        self.hashes = ContentHashes(cache_dir / HASH_INDEX if cache_dir else None)
        self._memory: dict[tuple[Path, bool], LatentStats] = {}
        self.encoded = 0
        self.loaded_from_disk = 0

    def _file(self, sample: Sample, flip: bool) -> Path:
        assert self.cache_dir is not None
        content = self.hashes.of(sample.image_path)
        name = f"{content[:32]}-{sample.bucket}-{'f' if flip else 'n'}-{self.vae_identity[:16]}.safetensors"
        return self.cache_dir / name[:2] / name

    def get(self, sample: Sample, flip: bool) -> LatentStats:
        """The cached latent of an image (must have been prepared)."""
        return self._memory[(sample.image_path, flip)]

    def prepare(self, entries: list[tuple[Sample, bool]], encode: Callable[[list[tuple[Sample, bool]]], list[LatentStats]],
                batch_size: int, progress: Callable[[int, int], None] | None = None) -> None:
        """Make every (sample, flip) available: load from disk or encode in batches of one bucket."""
        missing: list[tuple[Sample, bool]] = []
        for sample, flip in entries:
            key = (sample.image_path, flip)
            if key in self._memory:
                continue
            if self.cache_dir is not None:
                path = self._file(sample, flip)
                stats = _read(path)
                if stats is not None:
                    self._memory[key] = stats
                    self.loaded_from_disk += 1
                    continue
            missing.append((sample, flip))
        # One bucket per VAE batch: all images of a batch have the same size.
        missing.sort(key=lambda e: (e[0].bucket.width, e[0].bucket.height))
        done = 0
        for start in range(0, len(missing), batch_size):
            chunk = missing[start:start + batch_size]
            groups: dict[tuple[int, int], list[tuple[Sample, bool]]] = {}
            for entry in chunk:
                groups.setdefault((entry[0].bucket.width, entry[0].bucket.height), []).append(entry)
            for group in groups.values():
                for (sample, flip), stats in zip(group, encode(group)):
                    self._memory[(sample.image_path, flip)] = stats
                    if self.cache_dir is not None:
                        _write(self._file(sample, flip), stats)
                    self.encoded += 1
            done += len(chunk)
            if progress:
                progress(done, len(missing))
        self.hashes.save()


def _read(path: Path) -> LatentStats | None:
    try:
        tensors = load_file(path)
        return LatentStats(tensors["mean"], tensors["std"])
    except Exception:  # missing, truncated or foreign file: encode again
        return None


def _write(path: Path, stats: LatentStats) -> None:
    try:
        atomic_write_bytes(path, safetensors_bytes({"mean": stats.mean.contiguous(), "std": stats.std.contiguous()}),
                           durable=False)
    except OSError:
        pass  # a full or read-only cache folder only costs speed next time


def writable_cache_dir(data_dir: Path, run_root: Path) -> Path:
    """`.lora_cache` in the data folder (shared by later runs), else inside the run folder."""
    preferred = data_dir / ".lora_cache"
    try:
        preferred.mkdir(exist_ok=True)
        probe = preferred / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
        return preferred
    except OSError:
        fallback = run_root / "cache"
        fallback.mkdir(parents=True, exist_ok=True)
        return fallback


def fill_latent_cache(samples: list[Sample], config, vae_identity: str, run_root: Path,
                      encode: Callable[[list[tuple[Sample, bool]]], list[LatentStats]],
                      progress: Callable[[int, int], None]) -> tuple[LatentCache, float]:
    """The run's latent cache, filled (encoding what the disk cache lacks); returns it and the seconds it took.

    `cache_latents: disk` keeps it in `cache_dir`, else `.lora_cache` in the data folder (or
    the run folder when that is read-only); `memory` keeps it for this run only.
    """
    cache_dir = None
    if config.cache_latents == "disk":
        cache_dir = Path(config.cache_dir) if config.cache_dir else writable_cache_dir(Path(config.train_data_dir),
                                                                                       run_root)
    cache = LatentCache(vae_identity, cache_dir)
    flips = (False, True) if config.random_flip else (False,)
    started = time.time()
    cache.prepare([(s, f) for s in samples for f in flips], encode, batch_size=max(1, config.batch_size),
                  progress=progress)
    seconds = time.time() - started
    log.info("latent cache: %d encoded, %d read from %s in %.1f s", cache.encoded, cache.loaded_from_disk,
             cache_dir or "memory", seconds)
    return cache, seconds
