"""Opening a dataset folder: its images, its caption format and file, and its problems.

Plain Python, no Qt: the app runs ``open_dataset`` in a worker thread, and tests and the
benchmark call it directly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from trainer.captions import CaptionFileError, CaptionFormat, MetadataDocument, SidecarSet
from trainer.fsutil import atomic_write_bytes

from .caption_notes import editor_notes, from_trainer
from .names import find_images
from .problems import Problem

# One shared caption module (``trainer.captions``) reads and writes every format, so the
# app saves exactly what the trainer reads: a metadata file is a MetadataDocument, .txt
# sidecars are a SidecarSet.
CaptionStore = Union[MetadataDocument, SidecarSet]
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
        return store_format(self.store)


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
                                "Convert or delete the captions you do not want.", "warning"))
    return (present[0] if present else "txt"), problems


def open_store(root: Path, fmt: str, rels: list[str]) -> CaptionStore:
    """Read the captions of ``rels`` in format ``fmt`` (a missing metadata file is empty)."""
    if fmt == "txt":
        return SidecarSet.load(root, rels)
    return MetadataDocument.load(root / METADATA_NAMES[fmt], CaptionFormat(fmt), lenient=True)


def store_format(store: CaptionStore) -> str:
    """``csv``, ``jsonl`` or ``txt``."""
    return "txt" if isinstance(store, SidecarSet) else store.format.value


def store_path(store: CaptionStore) -> Path:
    """The metadata file, or the folder for sidecars."""
    return store.root if isinstance(store, SidecarSet) else store.path


def read_only_reason(store: CaptionStore) -> str | None:
    """Why the app must not rewrite the caption file (``file:line: what``), or ``None``."""
    if isinstance(store, SidecarSet) or store.writable:
        return None
    first = next((p for p in store.problems if p.is_error), None)
    if first is None:
        return f"{store.path.name} cannot be read"
    where = f"{store.path.name}:{first.line}" if first.line else store.path.name
    return f"{where}: {first.message}"


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
    problems.extend(from_trainer(p) for p in store.problems)
    problems.extend(editor_notes(store, set(rels)))
    known = store.captions
    captions = [known.get(rel, "") for rel in rels]
    return OpenedDataset(root, store, entries, captions, problems, caption_files_snapshot(store, rels))


def _check_cancel(cancel, root: Path) -> None:
    if cancel is not None and cancel.cancelled:
        raise OpenCancelled(f"Opening {root} was cancelled.")


def save_store(store: CaptionStore, captions: dict[str, str], progress=None, cancel=None) -> CaptionStore:
    """Write ``captions`` (rel -> caption, all images) atomically in the store's format.

    Returns the store to use from now on (a metadata file is re-read from the bytes just
    written, so the next save compares against what is on disk). ``progress(done, total)``
    reports long sidecar saves; ``cancel`` is accepted for the worker interface but a save
    always completes (a half-saved dataset helps nobody).
    """
    del cancel
    reason = read_only_reason(store)
    if reason:
        raise DatasetError(f"Not saved: {reason}. Fix the file, then reopen the folder.")
    if isinstance(store, SidecarSet):
        store.save(captions, progress)
        return store
    try:
        data = store.render(captions)
    except (CaptionFileError, ValueError) as exc:
        raise DatasetError(f"Not saved: {exc}") from None
    try:
        unchanged = store.path.read_bytes() == data
    except OSError:
        unchanged = False
    if not unchanged:
        atomic_write_bytes(store.path, data)
    return MetadataDocument.from_bytes(store.path, store.format, data, lenient=True)


def save_and_snapshot(store: CaptionStore, captions: dict[str, str], progress=None,
                      cancel=None) -> tuple[CaptionStore, dict[str, tuple[int, int]]]:
    """``save_store``, then the caption files' stat (both off the UI thread)."""
    store = save_store(store, captions, progress, cancel)
    return store, caption_files_snapshot(store, list(captions))


def convert_store(root: Path, target: str, rels: list[str], captions: dict[str, str]) -> CaptionStore:
    """Write all captions in format ``target`` and return its store; old files are left alone."""
    return save_store(open_store(root, target, rels), captions)


def caption_files_snapshot(store: CaptionStore, rels: list[str]) -> dict[str, tuple[int, int]]:
    """``{file: (mtime_ns, size)}`` of the caption files, to notice edits made elsewhere."""
    return files_snapshot([store.sidecar(rel) for rel in rels] if isinstance(store, SidecarSet) else [store.path])


def files_snapshot(paths: list[Path]) -> dict[str, tuple[int, int]]:
    """``{file: (mtime_ns, size)}`` of the files of ``paths`` that exist."""
    snapshot: dict[str, tuple[int, int]] = {}
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        snapshot[str(path)] = (st.st_mtime_ns, st.st_size)
    return snapshot
