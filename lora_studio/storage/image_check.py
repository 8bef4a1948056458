"""Cheap checks that find broken images without decoding every pixel.

A dataset of 10,000 photos cannot be fully decoded just to open it, so this reads the
header (size, format) and the end of the file: truncated JPEGs lack their end marker,
truncated PNGs fail the chunk check. The thumbnail decoder reports anything subtler.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

MAX_PIXELS = 178_956_970  # Pillow's own decompression-bomb threshold


@dataclass(frozen=True)
class ImageInfo:
    """What the check found: pixel size, or a problem phrased for the user."""

    width: int = 0
    height: int = 0
    problem: str | None = None


def _jpeg_complete(path: Path, file_size: int) -> bool:
    with open(path, "rb") as handle:
        handle.seek(max(0, file_size - 4096))
        tail = handle.read().rstrip(b"\x00\r\n \t")
    return tail.endswith(b"\xff\xd9")


def check_header_and_end(path: Path) -> ImageInfo:
    """Size and problem (None when fine) of one image file, from its header and its last bytes.

    No pixel is decoded; the full check is the trainer's ``trainer.images.check_full_decode``.
    """
    try:
        file_size = os.path.getsize(path)
    except OSError as exc:
        return ImageInfo(problem=f"cannot be read ({exc.strerror})")
    if file_size == 0:
        return ImageInfo(problem="is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                width, height = im.size
                fmt = im.format
                if width * height > MAX_PIXELS:
                    return ImageInfo(width, height, f"is too large ({width}×{height}); the limit is "
                                                    f"{MAX_PIXELS // 1_000_000} megapixels")
                if fmt == "PNG":
                    im.verify()
    except UnidentifiedImageError:
        return ImageInfo(problem="is not a readable image (corrupt header or wrong extension)")
    except Image.DecompressionBombError as exc:
        return ImageInfo(problem=f"is too large to open safely ({exc})")
    except (OSError, SyntaxError, ValueError) as exc:
        return ImageInfo(problem=f"is corrupt or truncated ({exc})")
    if fmt == "JPEG" and not _jpeg_complete(path, file_size):
        return ImageInfo(width, height, "is truncated (the JPEG end marker is missing)")
    return ImageInfo(width, height)
