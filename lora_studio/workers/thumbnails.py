"""Thumbnails: decoded at reduced size in a thread pool, cached on disk and in memory.

- Decoding goes through the trainer's ``open_rgb`` (one colour conversion for the grid,
  the detail view and training) with JPEG draft mode (the decoder scales by 1/2..1/8
  while reading) and ``thumbnail``; a 4000 px JPEG never exists at full size in memory.
- The disk cache is keyed by path, file size and mtime, so an edited image gets a new
  thumbnail and a stale one is never shown.
- The memory cache is an LRU bounded in bytes.
- Requests for visible items are served newest first (LIFO): after a fast scroll the
  rows now on screen come before the ones scrolled past. Background prefetch (filling
  the disk cache for the whole dataset) runs only when nothing visible is waiting.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import warnings
from collections import OrderedDict
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QObject, QThread, QThreadPool, Signal
from PySide6.QtGui import QImage, QPixmap

from trainer.images import ImageProblem, open_rgb

THUMB_PX = 192
MEMORY_BYTES = 128 * 1024 * 1024
MAX_PENDING = 600
# Part of every cache key: raised when decoding changes, so thumbnails an older decoder
# cached are decoded again (version 1 had its own conversion: 16-bit grey came out white).
DECODER_VERSION = 2


def cache_key(path: Path, file_size: int, mtime_ns: int, px: int) -> str:
    """Stable name of a thumbnail in the disk cache."""
    return hashlib.sha1(f"{path}|{file_size}|{mtime_ns}|{px}|v{DECODER_VERSION}".encode()).hexdigest()


def decode_thumbnail(path: Path, px: int) -> Image.Image:
    """A reduced RGB copy of the image at ``path``, at most ``px`` a side, as the trainer sees it.

    The conversion is the trainer's own (:func:`trainer.images.open_rgb`: EXIF orientation,
    transparency on white, CMYK, palette and 16-bit scaled), so a card never shows other
    colours than the model is trained on. ``min_side`` lets libjpeg decode a big JPEG at
    1/2..1/8 scale while reading. Raises :class:`~trainer.images.ImageProblem`.
    """
    with warnings.catch_warnings():
        # Pillow warns about odd but readable files (EXIF, palette transparency); the
        # dataset check reports real problems, a thumbnail is no place for that noise.
        warnings.simplefilter("ignore")
        image = open_rgb(path, min_side=px * 2)
    image.thumbnail((px, px), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return image


def to_qimage(im: Image.Image) -> QImage:
    """QImage copy of an RGB Pillow image, safe to build in a worker thread.

    The pixels are copied into memory the QImage owns. Wrapping a Python ``bytes`` buffer
    instead would make the QImage's destructor drop a Python reference without the GIL
    when it dies in a worker thread, which corrupts reference counts (seen as a crash in
    the 10,000-image benchmark).
    """
    image = QImage(im.width, im.height, QImage.Format.Format_RGB32)
    data = im.tobytes("raw", "BGRX")  # Format_RGB32 is 0xffRRGGBB: B, G, R, X in memory
    image.bits()[: len(data)] = data
    return image


class ThumbnailSignals(QObject):
    """``ready(path, image)`` or ``failed(path, reason)`` for each visible request."""

    ready = Signal(str, QImage)
    failed = Signal(str, str)
    idle = Signal()


class ThumbnailLoader(QObject):
    """Hands out thumbnails as QPixmaps and loads missing ones in the background."""

    def __init__(self, cache_dir: Path, px: int = THUMB_PX, threads: int | None = None,
                 memory_bytes: int = MEMORY_BYTES, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.cache_dir = Path(cache_dir)
        self.px = px
        self.memory_bytes = memory_bytes
        self.signals = ThumbnailSignals()
        self.signals.ready.connect(self._store)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(threads or max(2, os.cpu_count() or 2))
        # Decoding must never starve the UI thread (or the user's other programs).
        self.pool.setThreadPriority(QThread.Priority.LowPriority)
        self._lock = threading.Lock()
        self._visible: OrderedDict[str, tuple[Path, int, int]] = OrderedDict()
        self._background: OrderedDict[str, tuple[Path, int, int]] = OrderedDict()
        self._in_flight: set[str] = set()
        self._wanted: set[str] = set()  # keys a view asked for while they were in the background queue
        self._workers = 0
        self._stopped = False
        self._memory: OrderedDict[str, QPixmap] = OrderedDict()
        self._memory_used = 0
        self.failures: dict[str, str] = {}
        self.decoded = 0  # counters for the benchmark and tests
        self.from_disk = 0

    # -- UI thread ----------------------------------------------------------------------------
    def pixmap(self, path: Path, file_size: int, mtime_ns: int) -> QPixmap | None:
        """The cached thumbnail, or None after queueing a load (``signals.ready`` follows)."""
        key = str(path)
        pix = self._memory.get(key)
        if pix is not None:
            self._memory.move_to_end(key)
            return pix
        if key in self.failures:
            return None
        with self._lock:
            if key in self._in_flight:
                self._wanted.add(key)
                return None
            self._background.pop(key, None)
            self._visible[key] = (path, file_size, mtime_ns)
            self._visible.move_to_end(key)
            while len(self._visible) > MAX_PENDING:
                self._visible.popitem(last=False)  # scrolled far past: drop, it will be asked again
        self._spawn()
        return None

    def prefetch(self, items: list[tuple[Path, int, int]]) -> None:
        """Fill the disk cache for all ``items`` when nothing visible is waiting."""
        with self._lock:
            for path, size, mtime in items:
                self._background[str(path)] = (path, size, mtime)
        self._spawn()

    def pending(self) -> int:
        """Requests not yet finished (visible and background)."""
        with self._lock:
            return len(self._visible) + len(self._background) + len(self._in_flight)

    def stop(self) -> None:
        """Drop all queued work and wait for running decodes (when closing)."""
        with self._lock:
            self._stopped = True
            self._visible.clear()
            self._background.clear()
        self.pool.waitForDone(5000)

    def _spawn(self) -> None:
        with self._lock:
            want = min(self.pool.maxThreadCount(), len(self._visible) + len(self._background))
            extra = want - self._workers
            self._workers += max(0, extra)
        for _ in range(max(0, extra)):
            # A plain callable: PySide owns the runnable wrapper, so no Python-owned
            # QRunnable is ever deleted by Qt while a thread still uses it.
            self.pool.start(self._work)

    def _store(self, key: str, image: QImage) -> None:
        pix = QPixmap.fromImage(image)
        size = pix.width() * pix.height() * 4
        replaced = self._memory.pop(key, None)
        if replaced is not None:  # loaded twice (asked for again while on its way): count it once
            self._memory_used -= replaced.width() * replaced.height() * 4
        self._memory[key] = pix
        self._memory_used += size
        while self._memory_used > self.memory_bytes and len(self._memory) > 1:
            _, old = self._memory.popitem(last=False)
            self._memory_used -= old.width() * old.height() * 4

    # -- worker threads ---------------------------------------------------------------------
    def _next(self) -> tuple[str, tuple[Path, int, int], bool] | None:
        with self._lock:
            if self._stopped:
                self._workers -= 1
                return None
            if self._visible:
                key, item = self._visible.popitem(last=True)
                visible = True
            elif self._background:
                key, item = self._background.popitem(last=False)
                visible = False
            else:
                self._workers -= 1
                if not self._visible and not self._background and not self._in_flight and self._workers == 0:
                    self.signals.idle.emit()
                return None
            self._in_flight.add(key)
            return key, item, visible

    def _work(self) -> None:
        while True:
            job = self._next()
            if job is None:
                return
            key, (path, size, mtime), visible = job
            try:
                image = self._load(path, size, mtime)
            except Exception as exc:  # noqa: BLE001 - a bad image is shown as a badge, not a crash
                # The badge names the file already; an ImageProblem's str() would repeat the path.
                reason = exc.message if isinstance(exc, ImageProblem) else str(exc) or exc.__class__.__name__
                with self._lock:
                    self._in_flight.discard(key)
                self.failures[key] = reason
                self.signals.failed.emit(key, reason)
                continue
            with self._lock:
                self._in_flight.discard(key)
                if key in self._wanted:
                    self._wanted.discard(key)
                    visible = True
            if visible and image is not None:
                self.signals.ready.emit(key, image)

    def _load(self, path: Path, size: int, mtime: int) -> QImage:
        digest = cache_key(path, size, mtime, self.px)
        cached = self.cache_dir / digest[:2] / f"{digest}.jpg"
        if cached.exists():
            try:
                with Image.open(cached) as im:
                    image = to_qimage(im.convert("RGB"))
                self.from_disk += 1
                return image
            except OSError:
                pass  # a damaged cache file is simply rebuilt
        im = decode_thumbnail(path, self.px)
        self.decoded += 1
        cached.parent.mkdir(parents=True, exist_ok=True)
        # The cache needs no fsync: a torn file fails to decode and is rebuilt.
        fd, tmp = tempfile.mkstemp(dir=cached.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            im.save(handle, "JPEG", quality=85)
        os.replace(tmp, cached)
        return to_qimage(im)
