"""Scan a dataset folder and list every problem in it at once (torch-free).

A dataset is a folder (``train_data_dir``) of images with captions in one of the formats
of :mod:`trainer.captions`. Images sit in the folder itself, in kohya repeat folders
(``10_style/``: each image counts 10 times per epoch) or in other subfolders (once).
Folders and files whose names start with ``.`` or ``_`` are skipped: caches, thumbnails,
``.git``, macOS ``._img.jpg`` resource forks.

:func:`scan_dataset` never stops at the first problem: the trainer's ``validate`` and the
app's dataset view show the whole list, each with the file, the line and what to do.
With ``check_images=False`` nothing is decoded, so 10,000 images scan in well under a
second; with ``check_images=True`` every image is fully decoded (in a few threads: Pillow
releases the GIL while decoding) to catch truncated files and decompression bombs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from trainer.captions import (
    IMAGE_EXTENSIONS,
    CaptionFormat,
    CaptionReadResult,
    Problem,
    default_metadata_path,
    detect_format,
    find_images,
    is_image_name,
    is_skipped_name,
    load_captions,
    sidecar_path,
)
from trainer.images import DEFAULT_MAX_IMAGE_PIXELS, check_full_decode
from trainer.wording import plural

_REPEAT_FOLDER = re.compile(r"^(\d+)_(.+)$")
_MAX_CHECK_THREADS = 8
_EXTENSION_LIST = " ".join(sorted(IMAGE_EXTENSIONS))


@dataclass
class DatasetItem:
    """One training image and what the scan learned about it."""

    image_path: Path  # absolute
    rel_path: str  # POSIX, relative to the dataset root: the caption key
    caption: str | None
    repeats: int  # from a kohya repeat folder ``10_name/``, else 1


@dataclass
class DatasetScan:
    """The result of :func:`scan_dataset`: the images and every problem found."""

    root: Path
    format: CaptionFormat
    metadata_path: Path | None
    items: list[DatasetItem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        """Problems that must be fixed before training."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """Problems worth a look that do not stop training."""
        return [p for p in self.problems if p.severity != "error"]

    @property
    def ok(self) -> bool:
        """True when there is nothing that stops training."""
        return not self.errors

    @property
    def image_count(self) -> int:
        """Number of distinct images."""
        return len(self.items)

    @property
    def total_repeats(self) -> int:
        """Images seen per epoch: each image counted as often as its repeat folder says."""
        return sum(item.repeats for item in self.items)

    def summary(self) -> str:
        """One line for logs and status bars."""
        return (
            f"{plural(self.image_count, 'image')} ({self.total_repeats} per epoch with repeats), "
            f"{plural(len(self.errors), 'error')}, {plural(len(self.warnings), 'warning')}"
        )


def repeats_for(rel_path: str) -> int:
    """Repeats of an image from its top folder: ``10_style/a.png`` -> 10, else 1."""
    top, sep, _ = rel_path.partition("/")
    if not sep:
        return 1
    match = _REPEAT_FOLDER.match(top)
    if match is None or int(match.group(1)) < 1:
        return 1
    return int(match.group(1))


def scan_dataset(
    root: Path | str,
    metadata_path: Path | str | None = None,
    caption_extension: str = ".txt",
    check_images: bool = True,
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
) -> DatasetScan:
    """Find a dataset's images and captions and report everything wrong with them.

    ``metadata_path`` (a ``.csv`` or ``.jsonl`` file) overrides format detection;
    filenames in it are relative to ``root``. ``check_images`` decodes every image.
    """
    root = Path(os.path.abspath(root))
    meta = Path(metadata_path) if metadata_path is not None else None
    scan = DatasetScan(root=root, format=CaptionFormat.TXT, metadata_path=meta)
    usable_meta = True
    try:
        scan.format = detect_format(root, meta, caption_extension)
        scan.metadata_path = meta if meta is not None else default_metadata_path(root, scan.format)
    except ValueError as exc:
        hint = "point metadata_path to a metadata.csv or metadata.jsonl file"
        scan.problems.append(Problem(str(meta), None, str(exc), hint))
        usable_meta = False
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        scan.problems.append(Problem(str(root), None, f"dataset folder {what}", "check train_data_dir in the config"))
        return scan
    if meta is None and scan.format is CaptionFormat.CSV and (root / "metadata.jsonl").is_file():
        scan.problems.append(Problem(
            str(root), None, "has both metadata.csv and metadata.jsonl; using metadata.csv",
            "delete the one you do not use, or set metadata_path", severity="warning",
        ))

    images = find_images(root)
    if not images:
        scan.problems.append(Problem(
            str(root), None, f"dataset folder contains no images ({_EXTENSION_LIST})",
            "put the images in this folder or in kohya repeat folders like '10_style/'; "
            "names starting with '.' or '_' are skipped",
        ))
    rel_paths = [p.relative_to(root).as_posix() for p in images]
    result = _load_captions(scan, caption_extension, images) if usable_meta else CaptionReadResult(readable=False)
    # The caption file's problems in line order, whichever check found them.
    file_problems = result.problems + _rows_without_image(root, result, set(rel_paths), rel_paths)
    scan.problems.extend(sorted(file_problems, key=lambda p: (p.path, p.line or 0)))
    if scan.format is CaptionFormat.TXT and result.readable:
        scan.problems.extend(_orphan_sidecars(images, caption_extension))
    for image, rel in zip(images, rel_paths):
        caption = result.captions.get(rel)
        scan.items.append(DatasetItem(image, rel, caption, repeats_for(rel)))
        scan.problems.extend(_caption_problems(scan, result, image, rel, caption, caption_extension))
    if check_images:
        scan.problems.extend(_image_problems(images, max_image_pixels))
    return scan


def _load_captions(scan: DatasetScan, caption_extension: str, images: list[Path]) -> CaptionReadResult:
    try:
        return load_captions(scan.root, scan.format, scan.metadata_path, caption_extension, images)
    except ValueError as exc:  # An unusable caption_extension (e.g. ".png").
        problem = Problem(str(scan.root), None, str(exc), "use an extension such as .txt or .caption")
        return CaptionReadResult(problems=[problem], readable=False)


def _rows_without_image(
    root: Path, result: CaptionReadResult, known: set[str], rel_paths: list[str]
) -> list[Problem]:
    """Caption rows naming a file that is not one of the dataset's images."""
    problems = []
    lowered: dict[str, list[str]] = {}
    by_name: dict[str, list[str]] = {}
    for rel in rel_paths:
        lowered.setdefault(rel.lower(), []).append(rel)
        by_name.setdefault(rel.rsplit("/", 1)[-1], []).append(rel)
    for key in sorted(result.captions, key=lambda k: result.lines.get(k, 0)):
        if key in known:
            continue
        message, hint = _why_missing(root, key)
        guess = lowered.get(key.lower()) or by_name.get(key.rsplit("/", 1)[-1])
        if guess and len(guess) == 1:
            hint += f" (did you mean {guess[0]!r}?)"
        source = str(result.source) if result.source is not None else str(root / key)
        problems.append(Problem(source, result.lines.get(key), message, hint))
    return problems


def _why_missing(root: Path, key: str) -> tuple[str, str]:
    # Only stat the path (never open it): the key is already known to stay inside root.
    target = root / key
    if target.is_dir():
        return f"row names {key!r}, which is a folder, not an image", "fix the filename or delete the row"
    if target.is_file() and not is_image_name(key):
        return (
            f"row names {key!r}, which is not a supported image type ({_EXTENSION_LIST})",
            "convert the image to PNG or JPEG, or delete the row",
        )
    if target.is_file():
        return (
            f"row names {key!r}, which is in a hidden or skipped folder "
            "(names starting with '.' or '_' are skipped)",
            "move the image out of that folder, or delete the row",
        )
    return f"row names {key!r}, which does not exist in the dataset folder", "fix the filename or delete the row"


def _caption_problems(
    scan: DatasetScan,
    result: CaptionReadResult,
    image: Path,
    rel: str,
    caption: str | None,
    caption_extension: str,
) -> list[Problem]:
    if caption is None:
        if not result.readable or rel in result.rejected:
            return []  # Already explained by a problem about the caption file or row.
        if scan.format is CaptionFormat.TXT:
            hint = f"add {sidecar_path(image, caption_extension).name} with its caption next to it, or remove the image"
        else:
            name = scan.metadata_path.name if scan.metadata_path else "the metadata file"
            hint = f"add a row for {rel!r} to {name}, or remove the image"
        return [Problem(str(image), None, "image has no caption", hint)]
    if not caption:
        where = ""
        if rel in result.lines and scan.metadata_path is not None:
            where = f" ({scan.metadata_path.name} line {result.lines[rel]})"
        return [Problem(
            str(image), None, f"image has an empty caption{where}",
            "write a caption; with an empty one the image trains with an empty prompt",
            severity="warning",
        )]
    return []


def _orphan_sidecars(images: list[Path], caption_extension: str) -> list[Problem]:
    """Caption files next to images that belong to no image (usually a renamed image)."""
    owned = {sidecar_path(image, caption_extension) for image in images}
    ext = sidecar_path(Path("x.png"), caption_extension).suffix  # Normalised: ".txt".
    problems = []
    for folder in sorted({image.parent for image in images}):
        try:
            names = sorted(entry.name for entry in os.scandir(folder) if entry.is_file())
        except OSError:
            continue
        for name in names:
            path = folder / name
            if name.lower().endswith(ext.lower()) and not is_skipped_name(name) and path not in owned:
                problems.append(Problem(
                    str(path), None, "caption file has no image with the same name",
                    "rename it to match its image, or delete it", severity="warning",
                ))
    return problems


def _image_problems(images: Iterable[Path], max_pixels: int | None) -> list[Problem]:
    images = list(images)
    if not images:
        return []
    workers = max(1, min(_MAX_CHECK_THREADS, os.cpu_count() or 1, len(images)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="image-check") as pool:
        results = pool.map(lambda path: check_full_decode(path, max_pixels), images)
        return [problem for problem in results if problem is not None]
