"""Caption files: read, write and convert the three formats a dataset can use (torch-free).

- ``metadata.csv`` with ``filename,prompt`` (the seed's format; Excel's BOM, header aliases,
  ``;`` or tab separators and quoted multi-line captions are accepted);
- Hugging Face imagefolder ``metadata.jsonl`` with ``file_name`` and ``text`` per line;
- kohya ``.txt`` sidecars (``img.png`` + ``img.txt``).

This package is the one place that reads and writes captions: the trainer, the labeler
and the desktop app all go through it, so the app saves exactly what the trainer reads.

Captions are keyed by the image's POSIX path relative to the dataset folder
(``"10_style/img_001.jpg"``). Readers never stop at the first problem: they return every
:class:`Problem` with the file, the line and what to do. A filename in a caption file can
never reach outside the dataset folder (``../x.png``, ``/etc/x.png`` are reported, not read).

Writers are atomic (:mod:`trainer.fsutil`) and conservative: rows they do not understand are
kept verbatim, rows whose caption did not change keep their exact bytes, extra columns and
keys, the BOM and the line endings survive, and a file whose structure cannot be read is
refused rather than overwritten. Editors keep a :class:`MetadataDocument` or
:class:`SidecarSet` open between saves; the functions below are the one-shot forms.

Modules: :mod:`.formats` (which format), :mod:`.paths` (safe names), :mod:`.text`
(encodings), :mod:`.csv_format` and :mod:`.jsonl_format` (parsing), :mod:`.document`
(minimal rewrites), :mod:`.sidecars`. Only the standard library is imported: the desktop
app imports this without torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from trainer.fsutil import atomic_write_bytes

from .csv_format import CAPTION_COLUMNS, FILENAME_COLUMNS
from .document import MetadataDocument
from .formats import CaptionFormat, default_metadata_path, detect_format
from .jsonl_format import JSONL_CAPTION_KEYS, JSONL_FILENAME_KEYS
from .paths import IMAGE_EXTENSIONS, find_images, is_image_name, is_skipped_name, safe_relative_path, sidecar_path
from .problems import CaptionFileError, CaptionReadResult, Problem
from .sidecars import SidecarSet, SidecarText, read_sidecar, read_sidecars, write_sidecars
from .text import TextFormat

__all__ = [
    "CAPTION_COLUMNS", "FILENAME_COLUMNS", "IMAGE_EXTENSIONS", "JSONL_CAPTION_KEYS",
    "JSONL_FILENAME_KEYS", "CaptionFileError", "CaptionFormat", "CaptionReadResult",
    "MetadataDocument", "Problem", "SidecarSet", "SidecarText", "TextFormat",
    "convert_captions", "default_metadata_path", "detect_format", "find_images", "is_image_name", "is_skipped_name",
    "load_captions", "read_captions", "read_sidecar", "safe_relative_path", "sidecar_path",
    "write_captions",
]


def read_captions(
    folder: Path | str,
    fmt: CaptionFormat,
    metadata_path: Path | str | None = None,
    caption_extension: str = ".txt",
) -> tuple[dict[str, str], list[Problem]]:
    """Read a dataset's captions: ``({"10_style/img.jpg": "a caption", ...}, problems)``."""
    result = load_captions(folder, fmt, metadata_path, caption_extension)
    return result.captions, result.problems


def load_captions(
    folder: Path | str,
    fmt: CaptionFormat,
    metadata_path: Path | str | None = None,
    caption_extension: str = ".txt",
    images: Iterable[Path] | None = None,
) -> CaptionReadResult:
    """Like :func:`read_captions`, with the row line numbers and rejected names as well.

    ``images`` (absolute paths) is used for TXT sidecars; when omitted the folder is
    scanned with :func:`find_images`.
    """
    folder = Path(folder)
    fmt = CaptionFormat(fmt)
    if fmt is CaptionFormat.TXT:
        if images is None:
            images = find_images(folder)
        return read_sidecars(folder, images, caption_extension)
    path = _metadata_path(folder, fmt, metadata_path)
    # A missing file is a problem here (the config names it); an editor starts it empty.
    # Strict reading: an encoding problem is an error inside the parsed result already.
    return MetadataDocument.load(path, fmt, missing_ok=False).parsed.result


def write_captions(
    folder: Path | str,
    captions: Mapping[str, str],
    fmt: CaptionFormat,
    metadata_path: Path | str | None = None,
    caption_extension: str = ".txt",
) -> None:
    """Write ``captions`` (the dataset's complete caption set) in ``fmt``, atomically.

    CSV/JSONL: rows of the existing file keep their order, extra columns/keys and, when
    their caption is unchanged, their exact text; rows for images no longer in
    ``captions`` and later duplicates are dropped; rows that could not be read are kept
    verbatim; new rows (non-empty captions) are appended sorted. A new CSV gets the header
    ``filename,prompt``. Raises :class:`CaptionFileError` when the existing file cannot be
    read safely (not UTF-8, no header, an unclosed quote), so nothing is silently
    overwritten.

    TXT: one sidecar per image, written only when its caption changed; sidecars of
    images missing from ``captions`` are left alone (never deleted).

    Every key must be a path inside ``folder`` (``ValueError`` otherwise).
    """
    folder = Path(folder)
    fmt = CaptionFormat(fmt)
    clean = {safe_relative_path(k): v.strip() for k, v in captions.items()}
    if fmt is CaptionFormat.TXT:
        write_sidecars(folder, clean, caption_extension)
        return
    document = MetadataDocument.load(_metadata_path(folder, fmt, metadata_path), fmt)
    atomic_write_bytes(document.path, document.render(clean, keep_unlisted=False))


def convert_captions(
    folder: Path | str,
    src_fmt: CaptionFormat,
    dst_fmt: CaptionFormat,
    src_metadata_path: Path | str | None = None,
    dst_metadata_path: Path | str | None = None,
    caption_extension: str = ".txt",
) -> Path | None:
    """Read the captions in ``src_fmt`` and write them in ``dst_fmt``.

    Returns the written metadata file, or ``None`` for TXT sidecars. Raises
    :class:`CaptionFileError` if the source has errors, so a conversion never silently
    drops a caption.
    """
    result = load_captions(folder, src_fmt, src_metadata_path, caption_extension)
    errors = [p for p in result.problems if p.is_error]
    if errors:
        raise CaptionFileError(errors)
    dst_fmt = CaptionFormat(dst_fmt)
    target = (
        Path(dst_metadata_path) if dst_metadata_path is not None
        else default_metadata_path(folder, dst_fmt)
    )
    write_captions(folder, result.captions, dst_fmt, target, caption_extension)
    return target


def _metadata_path(folder: Path, fmt: CaptionFormat, metadata_path: Path | str | None) -> Path:
    path = Path(metadata_path) if metadata_path is not None else default_metadata_path(folder, fmt)
    assert path is not None
    return path
