"""A metadata file (CSV or JSONL) opened for editing: read once, written back minimally.

The desktop app and the trainer's writers share this class, so both keep everything a
user did not edit: rows whose caption did not change keep their exact bytes; extra
columns, unknown JSON keys, rows that could not be read, blank lines, the BOM and the
line endings all survive; a file whose structure cannot be read (an unclosed quote, no
header) is never rewritten.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .csv_format import new_csv_header, new_csv_row, parse_csv, updated_csv_row
from .jsonl_format import new_jsonl_row, parse_jsonl, updated_jsonl_row
from .formats import CaptionFormat
from .paths import safe_relative_path
from .problems import CaptionFileError, CaptionReadResult, Problem
from .rows import ParsedFile, Row
from .text import TextFormat, decode_text, read_text


@dataclass
class MetadataDocument:
    """A parsed ``metadata.csv`` / ``metadata.jsonl`` that can render an updated copy.

    ``lenient`` documents (the app's) read a legacy encoding with a warning instead of
    refusing it; everything else is the same as what the trainer reads.
    """

    path: Path
    format: CaptionFormat
    parsed: ParsedFile
    text_format: TextFormat
    exists: bool = True
    # Problems of reading the bytes (encoding), ahead of the parser's own.
    read_problems: tuple[Problem, ...] = ()

    @classmethod
    def load(cls, path: Path | str, fmt: CaptionFormat, lenient: bool = False,
             missing_ok: bool = True) -> "MetadataDocument":
        """Read ``path``; a missing file is an empty document (``exists`` False) if ``missing_ok``.

        Otherwise a missing file is an unreadable document whose problem says so.
        """
        path = Path(path)
        if missing_ok and not path.exists():
            return cls.new(path, fmt)
        text, text_format, problem = read_text(path, "metadata file", lenient)
        return cls._from_text(path, CaptionFormat(fmt), text, text_format, problem)

    @classmethod
    def from_bytes(cls, path: Path | str, fmt: CaptionFormat, data: bytes,
                   lenient: bool = False) -> "MetadataDocument":
        """A document for ``data`` as the content of ``path`` (e.g. just written)."""
        text, text_format, problem = decode_text(data, path, "metadata file", lenient)
        return cls._from_text(Path(path), CaptionFormat(fmt), text, text_format, problem)

    @classmethod
    def new(cls, path: Path | str, fmt: CaptionFormat) -> "MetadataDocument":
        """An empty document for a file that does not exist yet."""
        fmt = CaptionFormat(fmt)
        doc = cls._from_text(Path(path), fmt, "", TextFormat(), None)
        doc.exists = False
        return doc

    @classmethod
    def _from_text(cls, path: Path, fmt: CaptionFormat, text: str, text_format: TextFormat,
                   problem: Problem | None) -> "MetadataDocument":
        if fmt is CaptionFormat.TXT:
            raise ValueError("TXT captions are sidecar files, not one metadata file")
        if problem is not None and problem.is_error:
            parsed = ParsedFile(result=_unreadable(path, problem), fatal=True)
            return cls(path, fmt, parsed, text_format)
        parsed = parse_csv(text, path) if fmt is CaptionFormat.CSV else parse_jsonl(text, path)
        if fmt is CaptionFormat.JSONL:
            parsed.newline = text_format.newline
        return cls(path, fmt, parsed, text_format, read_problems=(problem,) if problem else ())

    @property
    def captions(self) -> dict[str, str]:
        """``{"10_style/img.jpg": "caption"}`` for every accepted row."""
        return self.parsed.result.captions

    @property
    def lines(self) -> dict[str, int]:
        """The line each caption was read from."""
        return self.parsed.result.lines

    @property
    def problems(self) -> list[Problem]:
        """Every problem found, in file order after the encoding's."""
        return [*self.read_problems, *self.parsed.result.problems]

    @property
    def writable(self) -> bool:
        """False when rewriting would lose text (unreadable bytes, unclosed quote, no header)."""
        return not self.parsed.fatal

    def check_writable(self) -> None:
        """Raise :class:`CaptionFileError` with the reasons if the file must not be rewritten."""
        if not self.writable:
            raise CaptionFileError(p for p in self.problems if p.is_error)

    def render_text(self, captions: Mapping[str, str], keep_unlisted: bool = True) -> str:
        """The file's text with ``captions`` applied.

        Rows keep their order and, when their caption is unchanged, their exact text;
        later duplicates are dropped (the reader ignored them too); rows that could not be
        read stay as they are. Rows for images missing from ``captions`` are kept when
        ``keep_unlisted`` (the app: the image may be being copied in), else dropped. New
        images with a caption are appended, sorted.
        """
        self.check_writable()
        clean = {safe_relative_path(k): v.strip() for k, v in captions.items()}
        parsed, csv = self.parsed, self.format is CaptionFormat.CSV
        if csv and not parsed.header:
            out = [new_csv_header(parsed.newline)]  # the file is empty (or blank lines only)
        else:
            out = [parsed.header_raw] if csv else []
        written: set[str] = set()
        for row in parsed.rows:
            text = self._render_row(row, clean, written, keep_unlisted)
            if text:
                out.append(text)
        for key in sorted(k for k in clean if k not in written and clean[k]):
            out.append(new_csv_row(parsed, key, clean[key]) if csv else new_jsonl_row(parsed, key, clean[key]))
        # A last line without its line ending gets one only if something follows it.
        for index in range(len(out) - 1):
            if out[index] and not out[index].endswith(("\n", "\r")):
                out[index] += parsed.newline
        return "".join(out)

    def _render_row(self, row: Row, captions: dict[str, str], written: set[str], keep_unlisted: bool) -> str:
        if not row.accepted:
            return "" if row.key is None and self._is_duplicate(row) else row.raw
        assert row.key is not None
        if row.key in written:
            return ""
        if row.key not in captions:
            return row.raw if keep_unlisted else ""
        written.add(row.key)
        if captions[row.key] == row.caption:
            return row.raw
        if self.format is CaptionFormat.CSV:
            return updated_csv_row(self.parsed, row, captions[row.key])
        return updated_jsonl_row(row, captions[row.key], self.parsed.newline)

    def _is_duplicate(self, row: Row) -> bool:
        """True if a rejected row was rejected only for repeating an accepted row's file."""
        parsed = self.parsed
        name: object = None
        if isinstance(row.record, list):
            if len(row.record) > max(parsed.filename_col, parsed.caption_col):
                name = row.record[parsed.filename_col]
        elif isinstance(row.record, dict):
            name = row.record.get(parsed.filename_key)
        if not isinstance(name, str):
            return False
        try:
            key = safe_relative_path(name)
        except ValueError:
            return False
        first = parsed.result.lines.get(key)
        return first is not None and first < row.start

    def render(self, captions: Mapping[str, str], keep_unlisted: bool = True) -> bytes:
        """:meth:`render_text` as the bytes to write (UTF-8, the file's BOM kept)."""
        return self.text_format.encode(self.render_text(captions, keep_unlisted))


def _unreadable(path: Path, problem: Problem) -> CaptionReadResult:
    return CaptionReadResult(problems=[problem], readable=False, source=path)
