"""Crash-safe writes: whole files or nothing, and no temporary files left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.fsutil import atomic_write_bytes, atomic_write_many


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp"))


def test_many_files_are_written_whole_with_their_modes(tmp_path: Path) -> None:
    atomic_write_bytes(tmp_path / "old.txt", b"before")
    (tmp_path / "old.txt").chmod(0o640)
    files = [(tmp_path / f"sub/{i}.txt", f"caption {i}".encode()) for i in range(250)]
    files.append((tmp_path / "old.txt", b"after"))
    seen: list[tuple[int, int]] = []
    atomic_write_many(files, progress=lambda done, total: seen.append((done, total)))
    assert all(path.read_bytes() == data for path, data in files)
    assert (tmp_path / "old.txt").stat().st_mode & 0o777 == 0o640  # an edit keeps who may read it
    assert seen == [(0, 251), (100, 251), (200, 251)]
    assert leftovers(tmp_path) == []


def test_a_failed_batch_leaves_no_temporary_files(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"old a")
    (tmp_path / "blocked.txt").mkdir()  # a folder where a file should go: its rename fails
    with pytest.raises(OSError):
        atomic_write_many([(tmp_path / "a.txt", b"new a"), (tmp_path / "blocked.txt", b"x"),
                           (tmp_path / "c.txt", b"new c")])
    # Files before the failure are complete, the others untouched; no half-written file anywhere.
    assert (tmp_path / "a.txt").read_bytes() == b"new a"
    assert not (tmp_path / "c.txt").exists()
    assert leftovers(tmp_path) == []
