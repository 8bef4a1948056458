"""Names inside a dataset: which files are images, and which names are safe to follow."""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
)

# The common case, "img.png" or "10_style/img.png", accepted without normalising: no
# leading slash, drive, backslash, dot segment or surrounding space. Opening a 10,000-row
# file calls this once per row.
_PLAIN_NAME = re.compile(r"^(?![A-Za-z]:)(?!\s)(?:[^/\\.\s\x00][^/\\\x00]*/)*[^/\\.\s\x00][^/\\\x00]*(?<!\s)$")


def safe_relative_path(name: str) -> str:
    """Return ``name`` as a normalised POSIX path inside the dataset folder.

    Backslashes count as separators (captions files are often written on Windows) and
    ``./`` prefixes are dropped. Raises ``ValueError`` with a user-facing reason for an
    empty name, an absolute path, or a path whose ``..`` parts leave the folder.
    """
    if _PLAIN_NAME.match(name) and "//" not in name:
        return name
    cleaned = name.strip().replace("\\", "/")
    if not cleaned:
        raise ValueError("has an empty filename")
    if cleaned.startswith("/") or re.match(r"^[A-Za-z]:", cleaned) or "\x00" in cleaned:
        raise ValueError(f"names {name.strip()!r}, which escapes the dataset folder")
    normal = posixpath.normpath(cleaned)
    if normal == ".." or normal.startswith("../"):
        raise ValueError(f"names {name.strip()!r}, which escapes the dataset folder")
    if normal == ".":
        raise ValueError(f"names {name.strip()!r}, which is the dataset folder, not a file")
    return normal


def is_image_name(name: str) -> bool:
    """True if ``name`` has one of :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    return posixpath.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def sidecar_path(image_path: Path, caption_extension: str = ".txt") -> Path:
    """The kohya caption file of an image: ``img.png`` -> ``img.txt``."""
    return image_path.with_suffix(check_caption_extension(caption_extension))


def check_caption_extension(ext: str) -> str:
    """``ext`` with its dot; ``ValueError`` if caption files with it could hurt the images."""
    ext = ext if ext.startswith(".") else f".{ext}"
    # A caption extension equal to an image extension would overwrite the images.
    if ext.lower() in IMAGE_EXTENSIONS or len(ext) < 2 or "/" in ext or "\\" in ext:
        raise ValueError(f"caption_extension {ext!r} cannot be used for caption files")
    return ext


def is_skipped_name(name: str) -> bool:
    """Names a dataset scan passes over: hidden entries, caches ("_cache", "__pycache__") and
    macOS "._x.jpg" forks."""
    return name.startswith((".", "_"))


def find_images(root: Path | str) -> list[Path]:
    """All images under ``root``, sorted by their relative path.

    Subfolders are searched recursively (kohya ``N_name`` folders and plain ones alike);
    names starting with ``.`` or ``_`` are skipped. Symlinked folders are followed once.
    """
    root = Path(os.path.abspath(root))
    found: list[tuple[str, Path]] = []
    seen_dirs: set[str] = set()
    pending = [(root, "")]
    while pending:
        folder, prefix = pending.pop()
        real = os.path.realpath(folder)
        if real in seen_dirs:
            continue  # A symlink loop, or the same folder linked twice.
        seen_dirs.add(real)
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue  # Unreadable subfolder: its images are simply not found.
        for entry in entries:
            if is_skipped_name(entry.name):
                continue
            rel = f"{prefix}{entry.name}"
            try:
                if entry.is_dir():
                    pending.append((Path(entry.path), f"{rel}/"))
                elif is_image_name(entry.name) and entry.is_file():
                    found.append((rel, Path(entry.path)))
            except OSError:
                continue
    found.sort(key=lambda pair: pair[0])
    return [path for _, path in found]
