"""Opening a dataset folder: its images, its caption format and file, and its problems.

Plain Python, no Qt: the app runs ``open_dataset`` in a worker thread, and tests and the
benchmark call it directly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from trainer.fsutil import atomic_write_bytes

from .csv_file import CsvCaptionFile
from .jsonl_file import JsonlCaptionFile
from .names import find_images
from .problems import Problem, Severity
from .sidecars import SidecarCaptions

CaptionStore = Union[CsvCaptionFile, JsonlCaptionFile, SidecarCaptions]
FORMATS = ("csv", "jsonl", "txt")
METADATA_NAMES = {"csv": "metadata.csv", "jsonl": "metadata.jsonl"}


class DatasetError(Exception):
    """A dataset folder that cannot be opened at all; the message says why and what to do."""


class OpenCancelled(DatasetError):
    """The user cancelled opening a dataset (a slow share); nothing was changed."""


@dataclass
class ImageEntry:
    """One image of the dataset as the grid shows it."""

    rel: str
    path: Path
    file_size: int
    mtime_ns: int


@dataclass
class OpenedDataset:
    """Everything read from a dataset folder."""

    root: Path
    store: CaptionStore
    entries: list[ImageEntry]
    captions: list[str]
    problems: list[Problem] = field(default_factory=list)
    snapshot: dict[str, tuple[int, int]] = field(default_factory=dict)  # caption files' (mtime, size)

    @property
    def format(self) -> str:
        """``csv``, ``jsonl`` or ``txt``."""
        return self.store.format


def detect_format(root: Path, images: list[Path]) -> tuple[str, list[Problem]]:
    """Which caption format the folder uses, and a warning when several are present."""
    present = [fmt for fmt in ("csv", "jsonl") if (root / METADATA_NAMES[fmt]).is_file()]
    has_txt = any(p.with_suffix(".txt").is_file() for p in images[:2000])
    if has_txt:
        present.append("txt")
    problems: list[Problem] = []
    if len(present) > 1:
        problems.append(Problem(root / METADATA_NAMES.get(present[0], ""), None,
                                f"is used; this folder also has {', '.join(present[1:])} captions, which are ignored.",
                                "Convert or delete the captions you do not want.", Severity.WARNING))
    return (present[0] if present else "txt"), problems


def open_store(root: Path, fmt: str, rels: list[str]) -> CaptionStore:
    """Read the captions of ``rels`` in format ``fmt`` (a missing metadata file is empty)."""
    if fmt == "txt":
        return SidecarCaptions.load(root, rels)
    cls = CsvCaptionFile if fmt == "csv" else JsonlCaptionFile
    path = root / METADATA_NAMES[fmt]
    if not path.exists():
        return cls.new(path)
    return cls.load(path, existing=set(rels))


def open_dataset(root: Path, fmt: str | None = None, progress=None, cancel=None) -> OpenedDataset:
    """Scan ``root``: list images (never decoding them), detect the format, read captions.

    ``progress(done, total)`` reports the stat pass; ``cancel`` (anything with a
    ``cancelled`` attribute, like the worker's token) makes it raise :class:`OpenCancelled`
    between steps, so a stalled network share never traps the user.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder. Choose a folder that contains images.")
    try:
        images = find_images(root)
    except PermissionError:
        raise DatasetError(f"{root} cannot be read (permission denied). Ask for read access or copy the dataset.") from None
    except OSError as exc:
        raise DatasetError(f"{root} cannot be read ({exc.strerror}). Check that the share is mounted.") from None
    _check_cancel(cancel, root)
    problems: list[Problem] = []
    if fmt is None:
        fmt, problems = detect_format(root, images)
    entries: list[ImageEntry] = []
    prefix = len(str(root).rstrip(os.sep)) + 1
    for index, path in enumerate(images):
        if index % 512 == 0:
            _check_cancel(cancel, root)
            if progress is not None:
                progress(index, len(images))
        text = str(path)
        try:
            st = os.stat(text)
        except OSError:
            continue
        # String slicing instead of Path.relative_to: 10,000 of those cost a noticeable 0.1 s.
        entries.append(ImageEntry(text[prefix:].replace(os.sep, "/"), path, st.st_size, st.st_mtime_ns))
    rels = [e.rel for e in entries]
    _check_cancel(cancel, root)
    try:
        store = open_store(root, fmt, rels)
    except OSError as exc:
        raise DatasetError(f"{root / METADATA_NAMES.get(fmt, '')} cannot be read ({exc.strerror}).") from None
    problems.extend(store.problems)
    captions = [store.captions.get(rel, "") for rel in rels]
    return OpenedDataset(root, store, entries, captions, problems, caption_files_snapshot(store, rels))


def _check_cancel(cancel, root: Path) -> None:
    if cancel is not None and cancel.cancelled:
        raise OpenCancelled(f"Opening {root} was cancelled.")


def save_store(store: CaptionStore, captions: dict[str, str], progress=None, cancel=None) -> None:
    """Write ``captions`` (rel -> caption, all images) atomically in the store's format.

    ``progress(done, total)`` reports long sidecar saves; ``cancel`` is accepted for the
    worker interface but a save always completes (a half-saved dataset helps nobody).
    """
    del cancel
    if store.read_only_reason:
        raise DatasetError(f"Not saved: {store.read_only_reason}. Fix the file, then reopen the folder.")
    if isinstance(store, SidecarCaptions):
        store.save(captions, progress)
        return
    data = store.render(captions)
    try:
        unchanged = store.path.read_bytes() == data
    except OSError:
        unchanged = False
    if not unchanged:
        atomic_write_bytes(store.path, data)
    store.adopt(data)


def save_and_snapshot(store: CaptionStore, captions: dict[str, str], progress=None,
                      cancel=None) -> dict[str, tuple[int, int]]:
    """``save_store``, then the caption files' stat (both off the UI thread)."""
    save_store(store, captions, progress, cancel)
    return caption_files_snapshot(store, list(captions))


def convert_store(root: Path, target: str, rels: list[str], captions: dict[str, str]) -> CaptionStore:
    """Write all captions in format ``target`` and return its store; old files are left alone."""
    if target == "txt":
        store: CaptionStore = SidecarCaptions.load(root, rels)
    else:
        cls = CsvCaptionFile if target == "csv" else JsonlCaptionFile
        path = root / METADATA_NAMES[target]
        store = cls.load(path, existing=set(rels)) if path.exists() else cls.new(path)
    save_store(store, captions)
    return store


def caption_files_snapshot(store: CaptionStore, rels: list[str]) -> dict[str, tuple[int, int]]:
    """``{file: (mtime_ns, size)}`` of the caption files, to notice edits made elsewhere."""
    paths = [store.sidecar(rel) for rel in rels] if isinstance(store, SidecarCaptions) else [store.path]
    snapshot: dict[str, tuple[int, int]] = {}
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        snapshot[str(path)] = (st.st_mtime_ns, st.st_size)
    return snapshot
