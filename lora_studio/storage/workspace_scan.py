"""Scanning a workspace for dataset folders (plain Python; runs in a worker).

Image datasets are opened to list their problems; a text dataset (a folder of .jsonl/.json
files and no images) is only named here: its rows are read when it is opened.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .dataset import DatasetError, open_dataset
from .names import direct_images
from .text_dataset import text_dataset_files

REPEAT_FOLDER = re.compile(r"^\d+_.")
SKIP = {"runs", "checkpoints", "tb", "samples", "__pycache__", "node_modules", "models"}
MAX_DEPTH = 4


@dataclass
class FolderInfo:
    """A folder of the workspace with its image count and dataset problems."""

    path: Path
    image_count: int = 0  # images directly in this folder
    problems: list[str] = field(default_factory=list)
    error: str | None = None  # the folder could not be read
    is_dataset: bool = False  # has images, a caption file or repeat folders of its own
    text_files: list[str] = field(default_factory=list)  # a text dataset's .jsonl/.json files (no images)
    children: list["FolderInfo"] = field(default_factory=list)

    def total_images(self) -> int:
        """Images here and in all subfolders: what opening this folder shows and trains on."""
        return self.image_count + sum(c.total_images() for c in self.children)


class ScanCancelled(Exception):
    """The user stopped a workspace scan."""


def scan_workspace(root: Path, cancel=None, depth: int = 0, progress=None) -> FolderInfo:
    """The folder tree under ``root`` with image counts; unreadable folders say so.

    ``progress(folders_done, 0)`` is called per folder; a cancelled scan raises ScanCancelled.
    """
    if cancel is not None and cancel.cancelled:
        raise ScanCancelled(f"Scan of {root} cancelled")
    if progress is not None:
        progress(depth, 0)
    info = FolderInfo(Path(root))
    try:
        direct = direct_images(info.path)
        subdirs = sorted(p for p in info.path.iterdir() if p.is_dir())
    except PermissionError:
        info.error = "cannot be read (permission denied)"
        return info
    except OSError as exc:
        info.error = f"cannot be read ({exc.strerror})"
        return info
    info.image_count = direct
    # A dataset: images of its own, a caption file, or kohya repeat folders ("10_name").
    if direct or any((info.path / name).is_file() for name in ("metadata.csv", "metadata.jsonl")) \
            or any(REPEAT_FOLDER.match(p.name) for p in subdirs):
        info.is_dataset = True
        try:
            opened = open_dataset(info.path)
            info.problems = [str(p) for p in opened.problems]
        except DatasetError as exc:
            info.error = str(exc)
    else:
        info.text_files = [p.name for p in text_dataset_files(info.path)]
        info.is_dataset = bool(info.text_files)
    if depth >= MAX_DEPTH:
        return info
    for sub in subdirs:
        name = sub.name
        # Hidden and run folders are not datasets (the trainer skips '.' and '_' names too).
        if name.startswith((".", "_")) or name in SKIP:
            continue
        if os.path.islink(sub):
            continue
        info.children.append(scan_workspace(sub, cancel, depth + 1, progress))
    return info
