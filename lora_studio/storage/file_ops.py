"""Copying files in (images into a dataset, a LoRA into ComfyUI's folder) and moving them to the trash
(plain Python, for workers)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from PySide6.QtCore import QFile

from trainer.fsutil import replace_folder

from .names import is_image


def copy_images_into(root: Path, sources: list[Path]) -> list[Path]:
    """Copy image files into ``root`` without overwriting (``name-1.png`` on a clash).

    Non-images are skipped. Returns the new files.
    """
    return [copy_into(root, source) for source in sources if source.is_file() and is_image(source)]


def copy_into(folder: Path, source: Path, *, name: str | None = None, replace: bool = False) -> Path:
    """Copy the file or folder ``source`` into ``folder`` as ``name`` (its own name when None); on a
    clash, replace that copy when ``replace``, else take the next free name (``name-1.ext``, ``-2``…).

    The copy goes to a hidden temporary name and gets its name only when complete, so a program
    watching ``folder`` (ComfyUI's LoRA list, a dataset) never sees it half-copied; a copy that fails
    (disk full) leaves nothing behind. Returns where the copy is.
    """
    target = folder / (name or source.name)
    if not replace:
        stem, suffix = (target.stem, target.suffix) if source.is_file() else (target.name, "")
        n = 1
        while target.exists():
            target = folder / f"{stem}-{n}{suffix}"
            n += 1
    partial = folder / f".{target.name}.partial"
    try:
        if source.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
            shutil.copytree(source, partial)
            replace_folder(partial, target)
        else:
            shutil.copy2(source, partial)
            os.replace(partial, target)
    except BaseException:
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.unlink(missing_ok=True)
        raise
    return target


def move_to_trash(paths: list[Path]) -> list[Path]:
    """Move files to the OS trash; returns those that could not be moved (never deletes)."""
    failed: list[Path] = []
    for path in paths:
        if path.exists() and not QFile.moveToTrash(str(path)):
            failed.append(path)
    return failed
