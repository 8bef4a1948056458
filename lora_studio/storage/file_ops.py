"""Adding images to a dataset and moving them to the trash (plain Python, for workers)."""

from __future__ import annotations

import shutil
from pathlib import Path

from PySide6.QtCore import QFile

from .names import is_image


def copy_images_into(root: Path, sources: list[Path]) -> list[Path]:
    """Copy image files into ``root`` without overwriting (``name-1.png`` on a clash).

    Non-images are skipped. Returns the new files. A copy goes to a temporary name first
    and is renamed when complete, so a half-copied image never appears in the dataset.
    """
    added: list[Path] = []
    for source in sources:
        if not (source.is_file() and is_image(source)):
            continue
        target = root / source.name
        n = 1
        while target.exists():
            target = root / f"{source.stem}-{n}{source.suffix}"
            n += 1
        partial = root / f".{target.name}.partial"
        shutil.copy2(source, partial)
        partial.replace(target)
        added.append(target)
    return added


def move_to_trash(paths: list[Path]) -> list[Path]:
    """Move files to the OS trash; returns those that could not be moved (never deletes)."""
    failed: list[Path] = []
    for path in paths:
        if path.exists() and not QFile.moveToTrash(str(path)):
            failed.append(path)
    return failed
