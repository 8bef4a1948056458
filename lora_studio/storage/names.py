"""Image file names inside a dataset: which files count, and which names are safe."""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from trainer.dataset_scan import find_images as trainer_find_images

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
# A name like "img.png" or "10_style/img.png": no leading slash, drive, backslash or dot segment.
_PLAIN = re.compile(r"^(?![A-Za-z]:)(?!\s)(?:[^/\\.\s][^/\\]*/)*[^/\\.\s][^/\\]*(?<!\s)$")


def is_image(path: Path | str) -> bool:
    """Whether the file name has an image extension (content is checked elsewhere)."""
    name = os.path.basename(path) if isinstance(path, str) else path.name
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS and not name.startswith(".")


def find_images(root: Path) -> list[Path]:
    """The images the trainer would train on: all under ``root``, sorted by relative path.

    This is ``trainer.dataset_scan.find_images`` (subfolders such as kohya's ``10_name``
    included, names starting with '.' or '_' skipped), so the grid shows exactly the
    training set. An unreadable ``root`` raises ``PermissionError``/``OSError``.
    """
    os.scandir(root).close()  # the trainer skips unreadable folders silently; the app must say so
    return trainer_find_images(root)


def direct_images(folder: Path) -> int:
    """Number of images directly in ``folder`` (not in subfolders)."""
    with os.scandir(folder) as it:
        return sum(1 for e in it if not e.name.startswith((".", "_")) and is_image(e.name) and e.is_file())


def safe_relative(name: str) -> str | None:
    """The POSIX relative path for a caption file's image name, or None if it leaves the folder.

    Absolute paths, drive letters and '..' components are refused: a caption file must
    not make the app (or the trainer) read or write outside the dataset folder.
    """
    if _PLAIN.match(name):
        return name  # the common case, checked without building a path
    cleaned = name.strip().replace("\\", "/")
    if not cleaned or cleaned.startswith("/") or re.match(r"^[A-Za-z]:", cleaned):
        return None
    parts = PurePosixPath(cleaned).parts
    if any(part == ".." for part in parts):
        return None
    parts = tuple(p for p in parts if p != ".")
    return "/".join(parts) if parts else None
