"""kohya ``.txt`` sidecars: ``img.png`` + ``img.txt``, one caption file per image.

A rewritten sidecar keeps its BOM and its trailing line ending, and a sidecar whose
caption did not change is not touched at all (its modification time included), so other
machines watching the share see only real edits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from trainer.fsutil import atomic_write_many

from .paths import check_caption_extension
from .problems import CaptionReadResult, Problem
from .text import TextFormat, decode_text


@dataclass(frozen=True)
class SidecarText:
    """A sidecar's caption and how its file was stored."""

    caption: str
    text_format: TextFormat = TextFormat()
    ending: str = ""  # the line ending(s) after the caption, written back as they were

    def encode(self, caption: str) -> bytes:
        """The file's bytes with ``caption`` instead, in the same style."""
        return self.text_format.encode(caption + self.ending)


def read_sidecar(path: Path, lenient: bool = False) -> tuple[SidecarText | None, Problem | None]:
    """``(text, problem)``: text is ``None`` for a missing file or one that cannot be read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, Problem(
            str(path), None, f"caption file cannot be read: {exc.strerror or exc}",
            "check that it is a readable file",
        )
    text, text_format, problem = decode_text(data, path, "caption file", lenient)
    if problem is not None and problem.is_error:
        return None, problem
    body = text.rstrip("\r\n")
    return SidecarText(text.strip(), text_format, text[len(body):]), problem


def read_sidecars(folder: Path, images: Iterable[Path], caption_extension: str) -> CaptionReadResult:
    """The captions of ``images`` (absolute paths) from their sidecars, as the trainer reads them."""
    ext = check_caption_extension(caption_extension)
    result = CaptionReadResult()
    owner: dict[Path, Path] = {}
    for image in images:
        image = Path(image)
        key = image.relative_to(folder).as_posix()
        sidecar = image.with_suffix(ext)
        if sidecar in owner:
            result.problems.append(Problem(
                str(sidecar), None,
                f"is the caption file of both {owner[sidecar].name!r} and {image.name!r}",
                "rename one of the images (and its caption file) so each has its own",
                severity="warning",
            ))
        owner.setdefault(sidecar, image)
        text, problem = read_sidecar(sidecar)
        if problem is not None:
            result.problems.append(problem)
            result.rejected.add(key)
        if text is not None:
            result.captions[key] = text.caption
    return result


def updated_sidecar(caption: str, previous: SidecarText | None) -> bytes | None:
    """The bytes to write for ``caption`` in ``previous``'s style, or ``None`` if nothing changes.

    An empty caption does not create a file that did not exist.
    """
    caption = caption.strip()
    if previous is None and not caption:
        return None
    if previous is not None and previous.caption == caption:
        return None
    return (previous or SidecarText("")).encode(caption)


def write_sidecars(folder: Path, captions: Mapping[str, str], caption_extension: str) -> None:
    """Write the sidecar of every image in ``captions`` whose caption differs from its file's."""
    ext = check_caption_extension(caption_extension)
    files = []
    for key, caption in sorted(captions.items()):
        sidecar = (folder / key).with_suffix(ext)
        previous, _ = read_sidecar(sidecar, lenient=True)
        data = updated_sidecar(caption, previous)
        if data is not None:
            files.append((sidecar, data))
    atomic_write_many(files)


@dataclass
class SidecarSet:
    """The sidecars of a dataset opened for editing (the app's view of a TXT dataset).

    It remembers each file's style and caption as last read or written, so that a save
    writes exactly the files whose caption changed without reading them all again.
    """

    root: Path
    extension: str = ".txt"
    texts: dict[str, SidecarText] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    lenient: bool = True

    @classmethod
    def load(cls, root: Path, rels: Iterable[str], extension: str = ".txt",
             lenient: bool = True) -> "SidecarSet":
        """Read the sidecar of every image in ``rels`` (relative POSIX paths) that has one."""
        self = cls(root=Path(root), extension=check_caption_extension(extension), lenient=lenient)
        for rel in rels:
            self._read_one(rel)
        return self

    @property
    def captions(self) -> dict[str, str]:
        """``{rel: caption}`` for the images that have a readable sidecar."""
        return {rel: text.caption for rel, text in self.texts.items()}

    def sidecar(self, rel: str) -> Path:
        """The caption file of the image at relative path ``rel``."""
        return (self.root / rel).with_suffix(self.extension)

    def _read_one(self, rel: str) -> None:
        text, problem = read_sidecar(self.sidecar(rel), self.lenient)
        if problem is not None:
            self.problems.append(problem)
        if text is not None:
            self.texts[rel] = text
        else:
            self.texts.pop(rel, None)

    def save(self, captions: Mapping[str, str],
             progress: Callable[[int, int], None] | None = None) -> list[str]:
        """Write the sidecars whose caption changed (each atomically); returns their rel paths.

        ``progress(done, total)`` is called every 100 files: a bulk edit over thousands of
        images on a network share takes a while. The files are flushed to disk together
        (:func:`trainer.fsutil.atomic_write_many`), not one fsync each.
        """
        files, written = [], []
        for rel, caption in captions.items():
            previous = self.texts.get(rel)
            data = updated_sidecar(caption, previous)
            if data is not None:
                files.append((self.sidecar(rel), data))
                written.append(rel)
        atomic_write_many(files, progress)
        for rel in written:
            style = self.texts.get(rel) or SidecarText("")
            self.texts[rel] = SidecarText(captions[rel].strip(), style.text_format, style.ending)
        return written
