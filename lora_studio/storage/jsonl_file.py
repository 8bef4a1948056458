"""Hugging Face imagefolder ``metadata.jsonl`` (``file_name``, ``text``) kept line by line."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .csv_file import _Record, split_lines
from .encoding import TextFormat, decode
from .names import safe_relative
from .problems import Problem, Severity

NAME_KEYS = ("file_name", "filename", "image")
TEXT_KEYS = ("text", "caption", "prompt")


@dataclass
class JsonlCaptionFile:
    """A parsed ``metadata.jsonl``: unchanged lines keep their bytes, unknown fields survive."""

    path: Path
    text_format: TextFormat = field(default_factory=TextFormat)
    records: list[_Record] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    text_keys: dict[str, str] = field(default_factory=dict)  # rel -> key holding the caption
    captions: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    read_only_reason: str | None = None
    format: str = "jsonl"

    @classmethod
    def new(cls, path: Path) -> "JsonlCaptionFile":
        """An empty file, not yet on disk."""
        return cls(path=path)

    @classmethod
    def load(cls, path: Path, existing: set[str] | None = None, data: bytes | None = None) -> "JsonlCaptionFile":
        """Parse ``path`` (or ``data``); each bad line becomes a problem and is kept as it is."""
        if data is None:
            data = path.read_bytes()
        text, fmt, bad_line = decode(data)
        self = cls(path=path, text_format=fmt)
        if bad_line:
            self.problems.append(Problem(path, bad_line, f"is not UTF-8 text; read as {fmt.encoding}.",
                                         "The next save writes it as UTF-8, which the trainer needs.",
                                         Severity.WARNING))
        self.records = split_lines(text)
        for index, record in enumerate(self.records):
            if not record.raw.strip():
                continue
            try:
                obj = json.loads(record.raw)
            except json.JSONDecodeError as exc:
                self.problems.append(Problem(path, record.line, f"is not valid JSON ({exc.msg}).",
                                             "The line is kept as it is and ignored.", Severity.ERROR))
                continue
            if not isinstance(obj, dict):
                self.problems.append(Problem(path, record.line, "is not a JSON object.",
                                             "The line is kept as it is and ignored.", Severity.ERROR))
                continue
            name_key = next((k for k in NAME_KEYS if isinstance(obj.get(k), str)), None)
            if name_key is None:
                self.problems.append(Problem(path, record.line, "has no 'file_name'.",
                                             "The line is kept as it is and ignored.", Severity.ERROR))
                continue
            rel = safe_relative(obj[name_key])
            if rel is None:
                self.problems.append(Problem(path, record.line, f"names '{obj[name_key]}', which is outside the dataset folder.",
                                             "The line is refused (kept in the file, never read or written).",
                                             Severity.ERROR))
                continue
            if rel in self.rows:
                first = self.records[self.rows[rel]].line
                self.problems.append(Problem(path, record.line, f"repeats '{rel}' (first on line {first}).",
                                             "The first line is used and edited; delete the duplicate.", Severity.WARNING))
                continue
            if existing is not None and rel not in existing:
                self.problems.append(Problem(path, record.line, f"is for '{rel}', which does not exist.",
                                             "The line is kept in the file and not shown.", Severity.WARNING))
            text_key = next((k for k in TEXT_KEYS if k in obj), "text")
            value = obj.get(text_key, "")
            self.rows[rel] = index
            self.text_keys[rel] = text_key
            self.captions[rel] = value if isinstance(value, str) else str(value)
        return self

    def render(self, captions: dict[str, str]) -> bytes:
        """The file's bytes with ``captions`` applied (unchanged lines byte-for-byte)."""
        records = list(self.records)
        for rel, caption in captions.items():
            index = self.rows.get(rel)
            if index is None or self.captions.get(rel) == caption:
                continue
            obj = json.loads(records[index].raw)
            obj[self.text_keys[rel]] = caption  # every other field, known or not, is kept
            records[index] = _Record(json.dumps(obj, ensure_ascii=False), records[index].terminator, records[index].line)
        parts: list[str] = []
        for record in records:
            parts += [record.raw, record.terminator]
        new_rows = sorted(rel for rel, caption in captions.items() if rel not in self.rows and caption)
        if new_rows and parts and not parts[-1]:
            parts[-1] = self.text_format.newline
        for rel in new_rows:
            parts += [json.dumps({"file_name": rel, "text": captions[rel]}, ensure_ascii=False), self.text_format.newline]
        return self.text_format.encode("".join(parts))

    def adopt(self, data: bytes) -> None:
        """Take just-written bytes as the baseline for the next save."""
        fresh = JsonlCaptionFile.load(self.path, data=data)
        self.records, self.rows, self.text_keys, self.captions = fresh.records, fresh.rows, fresh.text_keys, fresh.captions
