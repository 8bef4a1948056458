"""Image files inside a dataset: which files count (the trainer's rule, shared)."""

from __future__ import annotations

import os
from pathlib import Path

from trainer.captions import IMAGE_EXTENSIONS
from trainer.dataset_scan import find_images as trainer_find_images


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
