"""The three places a dataset can keep its captions, and how to tell which one it uses."""

from __future__ import annotations

import enum
from pathlib import Path


class CaptionFormat(str, enum.Enum):
    """Where a dataset keeps its captions."""

    CSV = "csv"
    TXT = "txt"
    JSONL = "jsonl"


def default_metadata_path(folder: Path | str, fmt: CaptionFormat) -> Path | None:
    """``folder/metadata.csv`` or ``folder/metadata.jsonl``; ``None`` for TXT sidecars."""
    fmt = CaptionFormat(fmt)
    if fmt is CaptionFormat.TXT:
        return None
    return Path(folder) / f"metadata.{fmt.value}"


def detect_format(
    folder: Path | str,
    metadata_path: Path | str | None = None,
    caption_extension: str = ".txt",
) -> CaptionFormat:
    """Decide which caption format a dataset uses.

    A given ``metadata_path`` decides by its suffix (``.csv`` or ``.jsonl``; anything else
    raises ``ValueError``). Otherwise ``metadata.csv`` in the folder means CSV,
    ``metadata.jsonl`` means JSONL, and neither means ``caption_extension`` sidecars.
    """
    del caption_extension  # Sidecars are the fallback; their extension does not decide.
    if metadata_path is not None:
        suffix = Path(metadata_path).suffix.lower()
        if suffix == ".csv":
            return CaptionFormat.CSV
        if suffix == ".jsonl":
            return CaptionFormat.JSONL
        raise ValueError(
            f"metadata_path {str(metadata_path)!r} must end in .csv or .jsonl; "
            "leave it empty to use .txt caption files next to the images"
        )
    folder = Path(folder)
    if (folder / "metadata.csv").is_file():
        return CaptionFormat.CSV
    if (folder / "metadata.jsonl").is_file():
        return CaptionFormat.JSONL
    return CaptionFormat.TXT
