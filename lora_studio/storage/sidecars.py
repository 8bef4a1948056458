"""kohya ``.txt`` sidecars: ``img.png`` + ``img.txt``, one caption file per image."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trainer.fsutil import atomic_write_bytes

from .encoding import TextFormat, decode
from .problems import Problem, Severity


@dataclass
class SidecarCaptions:
    """Captions in sidecar files; each file keeps its encoding, BOM and trailing newline."""

    root: Path
    extension: str = ".txt"
    formats: dict[str, TextFormat] = field(default_factory=dict)
    trailing: dict[str, str] = field(default_factory=dict)  # rel -> trailing newline(s) as read
    captions: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    read_only_reason: str | None = None
    format: str = "txt"

    @property
    def path(self) -> Path:
        """The folder (sidecars have no single metadata file)."""
        return self.root

    def sidecar(self, rel: str) -> Path:
        """The caption file of the image at relative path ``rel``."""
        return (self.root / rel).with_suffix(self.extension)

    @classmethod
    def load(cls, root: Path, rels: list[str], extension: str = ".txt") -> "SidecarCaptions":
        """Read the sidecar of every image in ``rels`` that has one."""
        self = cls(root=root, extension=extension)
        for rel in rels:
            self._read_one(rel)
        return self

    def _read_one(self, rel: str) -> None:
        path = self.sidecar(rel)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            self.problems.append(Problem(path, None, f"cannot be read ({exc.strerror}).",
                                         "Check its permissions; the caption is shown empty and not saved.", Severity.ERROR))
            return
        text, fmt, bad_line = decode(data)
        if bad_line:
            self.problems.append(Problem(path, bad_line, f"is not UTF-8 text; read as {fmt.encoding}.",
                                         "The next save of this caption writes it as UTF-8.", Severity.WARNING))
        body = text.rstrip("\r\n")
        self.formats[rel] = fmt
        self.trailing[rel] = text[len(body):]
        self.captions[rel] = body

    def reload(self, rels: list[str]) -> dict[str, str]:
        """Re-read the given sidecars (after an external change); returns their captions."""
        for rel in rels:
            self.captions.pop(rel, None)
            self._read_one(rel)
        return {rel: self.captions.get(rel, "") for rel in rels}

    def save(self, captions: dict[str, str], progress=None) -> list[str]:
        """Write the sidecars whose caption changed (each atomically); returns their rel paths.

        ``progress(done, total)`` is called every 100 files: a bulk edit over thousands of
        images on a network share takes a while (one fsync per file).
        """
        written: list[str] = []
        todo = [(rel, caption) for rel, caption in captions.items()
                if not (self.captions.get(rel, "") == caption and (rel in self.captions or not caption))]
        for done, (rel, caption) in enumerate(todo):
            if progress is not None and done % 100 == 0:
                progress(done, len(todo))
            fmt = self.formats.get(rel, TextFormat())
            atomic_write_bytes(self.sidecar(rel), fmt.encode(caption + self.trailing.get(rel, "")))
            self.captions[rel] = caption
            written.append(rel)
        return written
