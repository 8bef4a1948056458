"""Crash-safe file writes shared by the trainer and the app (torch-free).

A write either lands completely or not at all: the data goes to a temporary file in the
same folder, is fsynced, and is renamed over the target. A crash mid-write leaves the old
file intact and at worst a stray ``.tmp`` file that the next write replaces.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path


def read_json_object(path: Path) -> dict:
    """A JSON file that must hold an object; ValueError (with the path and why) when it does not."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} could not be read: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a JSON object")
    return data


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries to disk so that a rename inside it survives a power cut."""
    if os.name == "nt":  # Windows cannot open a directory for fsync; NTFS journals renames.
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_folder(staging: Path, final: Path) -> None:
    """Put the complete folder ``staging`` in place of ``final`` (which may exist), then fsync the parent.

    An existing ``final`` is moved aside first and deleted only once ``staging`` is in place, so
    at every moment either the old folder or the new one is there, whole.
    """
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(staging, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, final)
    fsync_dir(final.parent)


def atomic_write_bytes(path: Path | str, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename).

    ``durable=False`` skips the fsyncs: the file is still never seen half-written, but a
    power cut may lose it. For caches, where a lost file only costs recomputing it and an
    fsync per file would dominate the time on network storage.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); on shared storage the other machines of the
        # studio must read it, so give it the mode a plain open() would (or the old file's).
        os.chmod(tmp_name, _target_mode(path))
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        # Leave no half-written temporary file behind, whatever interrupted us.
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    if durable:
        fsync_dir(path.parent)


def _target_mode(path: Path) -> int:
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write_text(path: Path | str, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically; newlines are written as given (no translation)."""
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_many(
    files: Sequence[tuple[Path | str, bytes]],
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Write several files, each atomically, with one flush to disk for all of them.

    Every file is replaced whole or not at all, as with :func:`atomic_write_bytes`. But an
    fsync per file costs ~3 ms on a network share (30 s for 10,000 caption files), so the
    temporary files are all written first, flushed together (``os.sync``), and only then
    renamed over their targets; each folder is flushed once at the end. A crash before
    the renames leaves every old file intact. Where ``os.sync`` does not exist (Windows),
    each file is fsynced as it is written. ``progress(done, total)`` follows the writes.
    """
    if not files:
        return
    can_sync_all = hasattr(os, "sync")
    pending: list[tuple[str, Path]] = []
    renamed = 0
    try:
        for done, (path, data) in enumerate(files):
            if progress is not None and done % 100 == 0:
                progress(done, len(files))
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            pending.append((tmp_name, path))
            os.chmod(tmp_name, _target_mode(path))
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                if not can_sync_all:
                    handle.flush()
                    os.fsync(handle.fileno())
        if can_sync_all:
            os.sync()
        for tmp_name, path in pending:
            os.replace(tmp_name, path)
            renamed += 1
    except BaseException:
        for tmp_name, _ in pending[renamed:]:  # never leave temporary files behind
            try:
                os.unlink(tmp_name)
            except FileNotFoundError:
                pass
        raise
    for folder in {Path(path).parent for path, _ in files}:
        fsync_dir(folder)
