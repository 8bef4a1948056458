"""Shared by the caption tests: files written byte for byte, and the checks they repeat."""

from __future__ import annotations

from pathlib import Path

from trainer.captions import CaptionFormat, Problem, read_captions


def write(path: Path, text: str | bytes) -> Path:
    """``text`` into ``path`` (UTF-8 for str, as-is for bytes), its folder made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_bytes(text.encode("utf-8"))
    return path


def touch_images(folder: Path, *names: str) -> None:
    """Placeholder image files (the caption code never decodes them)."""
    for name in names:
        write(folder / name, b"not decoded by caption tests")


def read_csv(folder: Path) -> tuple[dict[str, str], list[Problem]]:
    """The folder's metadata.csv as read for training."""
    return read_captions(folder, CaptionFormat.CSV)


def no_temp_files(folder: Path) -> bool:
    """Whether an atomic write left no temporary file behind."""
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]
