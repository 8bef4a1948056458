"""``metadata.csv`` (``filename,prompt``) read and written record by record.

The file is split into raw records with a quote-aware scanner, so every record keeps
its exact bytes; a save re-serializes only the records whose caption changed and appends
rows for images that had none.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from .encoding import TextFormat, decode
from .names import safe_relative
from .problems import Problem, Severity

FILENAME_COLUMNS = ("filename", "file_name", "file", "image", "path")
CAPTION_COLUMNS = ("prompt", "caption", "text", "tags")


@dataclass
class _Record:
    raw: str  # the record's text without its line terminator
    terminator: str  # "\n", "\r\n" or "" for a last line without newline
    line: int  # 1-based physical line where the record starts


_SPECIAL = re.compile(r'"|\r\n|\n|\r')


def split_records(text: str) -> tuple[list[_Record], int | None]:
    """Raw records of a CSV text; the second value is the line of an unterminated quote.

    Only quotes and line breaks matter, so the scan jumps between those with a regex
    instead of looking at every character (10,000 rows in a few milliseconds).
    """
    records: list[_Record] = []
    start = 0
    line = 1
    record_line = 1
    in_quotes = False
    quote_line = 0
    for match in _SPECIAL.finditer(text):
        token = match.group()
        if token == '"':
            if not in_quotes:
                quote_line = line
            in_quotes = not in_quotes
            continue
        line += 1
        if not in_quotes:
            records.append(_Record(text[start:match.start()], token, record_line))
            start = match.end()
            record_line = line
    if start < len(text):
        records.append(_Record(text[start:], "", record_line))
    return records, (quote_line if in_quotes else None)


def _parse(raw: str, delimiter: str = ",") -> list[str]:
    return next(csv.reader(io.StringIO(raw), delimiter=delimiter), [])


def _serialize(fields: list[str], delimiter: str = ",") -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="", delimiter=delimiter).writerow(fields)
    return buffer.getvalue()


def _sniff_delimiter(header: str) -> str:
    """Excel in some locales writes ';' (or tabs); the header line tells which."""
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


@dataclass
class CsvCaptionFile:
    """A parsed ``metadata.csv`` that can be written back with minimal changes."""

    path: Path
    text_format: TextFormat = field(default_factory=TextFormat)
    records: list[_Record] = field(default_factory=list)
    header: list[str] = field(default_factory=lambda: ["filename", "prompt"])
    name_col: int = 0
    caption_col: int = 1
    rows: dict[str, int] = field(default_factory=dict)  # rel path -> record index
    captions: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    read_only_reason: str | None = None
    delimiter: str = ","
    format: str = "csv"

    @classmethod
    def new(cls, path: Path) -> "CsvCaptionFile":
        """An empty file (not yet on disk) with the seed's ``filename,prompt`` header."""
        return cls(path=path, records=[_Record("filename,prompt", "\n", 1)])

    @classmethod
    def load(cls, path: Path, existing: set[str] | None = None, data: bytes | None = None) -> "CsvCaptionFile":
        """Parse ``path`` (or ``data`` as its content); ``existing`` enables missing-file checks."""
        if data is None:
            data = path.read_bytes()
        text, fmt, bad_line = decode(data)
        self = cls(path=path, text_format=fmt)
        problem = self.problems.append
        if bad_line:
            problem(Problem(path, bad_line, f"is not UTF-8 text; read as {fmt.encoding}.",
                            "The next save writes it as UTF-8, which the trainer needs.",
                            Severity.WARNING))
        if fmt.bom:
            problem(Problem(path, 1, "starts with a byte-order mark (BOM).", "It is kept when saving; the trainer ignores it.",
                            Severity.WARNING))
        self.records, open_quote = split_records(text)
        if open_quote:
            self.read_only_reason = f"{path.name}:{open_quote}: a quote is opened and never closed"
            problem(Problem(path, open_quote, "has a quote that is never closed; the rest of the file would be one caption.",
                            "Close the quote in a text editor. The app will not save this file until it is fixed.",
                            Severity.ERROR))
            return self
        if not self.records:
            return cls.new(path)
        self.delimiter = _sniff_delimiter(self.records[0].raw)
        self.header = [h.strip().lower() for h in _parse(self.records[0].raw, self.delimiter)]
        name_col = next((self.header.index(c) for c in FILENAME_COLUMNS if c in self.header), None)
        caption_col = next((self.header.index(c) for c in CAPTION_COLUMNS if c in self.header), None)
        if name_col is None or caption_col is None:
            missing = "filename" if name_col is None else "prompt"
            self.read_only_reason = f"{path.name}:1: no '{missing}' column"
            problem(Problem(path, 1, f"has no '{missing}' column in its header line ({','.join(self.header)}).",
                            "Make the first line 'filename,prompt'. The app will not save this file until it is fixed.",
                            Severity.ERROR))
            return self
        self.name_col, self.caption_col = name_col, caption_col
        # One reader over all records (one record per item) is ~10x faster than one per row.
        all_fields = list(csv.reader((r.raw for r in self.records[1:]), delimiter=self.delimiter))
        for index, (record, fields) in enumerate(zip(self.records[1:], all_fields), start=1):
            if not record.raw.strip():
                continue
            if len(fields) <= max(name_col, caption_col):
                problem(Problem(path, record.line, f"has {len(fields)} column(s) instead of {len(self.header)}.",
                                "The row is kept as it is and ignored.", Severity.WARNING))
                continue
            rel = safe_relative(fields[name_col])
            if rel is None:
                problem(Problem(path, record.line, f"names '{fields[name_col]}', which is outside the dataset folder.",
                                "The row is refused (kept in the file, never read or written).", Severity.ERROR))
                continue
            if rel in self.rows:
                first = self.records[self.rows[rel]].line
                problem(Problem(path, record.line, f"repeats '{rel}' (first on line {first}).",
                                "The first row is used and edited; delete the duplicate.", Severity.WARNING))
                continue
            if existing is not None and rel not in existing:
                problem(Problem(path, record.line, f"is for '{rel}', which does not exist.",
                                "The row is kept in the file and not shown.", Severity.WARNING))
            caption = fields[caption_col]
            if "\n" in caption or "\r" in caption:
                problem(Problem(path, record.line, f"has a line break inside the caption of '{rel}'.",
                                "It is kept; most trainers read the caption as one line.", Severity.WARNING))
            self.rows[rel] = index
            self.captions[rel] = caption
        return self

    def render(self, captions: dict[str, str]) -> bytes:
        """The file's bytes with ``captions`` applied (unchanged records byte-for-byte)."""
        newline = self.text_format.newline
        parts: list[str] = []
        records = list(self.records)
        for rel, caption in captions.items():
            index = self.rows.get(rel)
            if index is None:
                continue
            if self.captions.get(rel) != caption:
                fields = _parse(records[index].raw, self.delimiter)
                fields[self.caption_col] = caption
                records[index] = _Record(_serialize(fields, self.delimiter), records[index].terminator, records[index].line)
        new_rows = [rel for rel, caption in captions.items() if rel not in self.rows and caption]
        for record in records:
            parts.append(record.raw)
            parts.append(record.terminator)
        if new_rows and parts and not parts[-1]:
            parts[-1] = newline  # the old last line had no newline; the new rows follow it
        width = max(len(self.header), self.name_col + 1, self.caption_col + 1)
        for rel in sorted(new_rows):
            fields = [""] * width
            fields[self.name_col] = rel
            fields[self.caption_col] = captions[rel]
            parts.append(_serialize(fields, self.delimiter))
            parts.append(newline)
        return self.text_format.encode("".join(parts))

    def adopt(self, data: bytes) -> None:
        """Take just-written bytes as the baseline for the next save."""
        fresh = CsvCaptionFile.load(self.path, data=data)
        self.records, self.rows, self.captions = fresh.records, fresh.rows, fresh.captions
        self.delimiter = fresh.delimiter


def split_lines(text: str) -> list[_Record]:
    """Physical lines with their terminators (for line-based formats such as JSON Lines)."""
    # Only CR/LF end a line: str.splitlines would also split on U+2028 inside JSON strings.
    records: list[_Record] = []
    for number, match in enumerate(re.finditer(r"([^\r\n]*)(\r\n|\n|\r|$)", text), start=1):
        body, term = match.group(1), match.group(2)
        if not body and not term:
            break
        records.append(_Record(body, term, number))
    return records
