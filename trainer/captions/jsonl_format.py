"""``metadata.jsonl`` (Hugging Face imagefolder): one JSON object per line.

Keys ``file_name`` and ``text`` (aliases accepted). Unknown keys are kept by the writer;
a line that is not valid JSON is reported on its line and kept as it is.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .problems import CaptionReadResult
from .rows import ParsedFile, Row, RowChecker

JSONL_FILENAME_KEYS: tuple[str, ...] = ("file_name", "filename", "file", "image")
JSONL_CAPTION_KEYS: tuple[str, ...] = ("text", "caption", "prompt")
_EXAMPLE = 'like {"file_name": "img.png", "text": "a caption"}'
# Only CR/LF end a line: JSON strings may hold U+2028 and friends, which splitlines() cuts.
_LINE = re.compile(r"([^\r\n]*)(\r\n|\n|\r|$)")


def _physical_lines(text: str) -> list[str]:
    lines = []
    for match in _LINE.finditer(text):
        if not match.group(0):
            break
        lines.append(match.group(0))
    return lines


def parse_jsonl(text: str, path: Path) -> ParsedFile:
    """Split a JSONL text into rows and read its captions; every problem has its line."""
    result = CaptionReadResult(source=path)
    parsed = ParsedFile(result=result)
    checker = RowChecker(path, result)
    keys_chosen = False
    for number, raw in enumerate(_physical_lines(text), start=1):
        row = Row(number, number, raw)
        parsed.rows.append(row)
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            checker.problem(
                number, f"line is not valid JSON: {exc.msg} (column {exc.colno})",
                f"each line must be one JSON object, {_EXAMPLE}",
            )
            continue
        if not isinstance(obj, dict):
            checker.problem(
                number, f"line is a JSON {type(obj).__name__}, not an object",
                f"each line must be one JSON object, {_EXAMPLE}",
            )
            continue
        row.record = obj
        fkey = next((k for k in JSONL_FILENAME_KEYS if k in obj), None)
        ckey = next((k for k in JSONL_CAPTION_KEYS if k in obj), None)
        if not _keys_ok(checker, number, obj, fkey, ckey):
            if fkey is not None:
                checker.reject_name(obj[fkey])
            continue
        assert fkey is not None and ckey is not None
        if not keys_chosen:
            parsed.filename_key, parsed.caption_key, keys_chosen = fkey, ckey, True
        key = checker.accept(number, obj[fkey], obj[ckey])
        if key is not None:
            row.key, row.caption, row.accepted = key, result.captions[key], True
    return parsed


def _keys_ok(checker: RowChecker, line: int, obj: dict, fkey: str | None, ckey: str | None) -> bool:
    if fkey is None:
        checker.problem(line, 'object has no "file_name" key', f"add the image's file name, {_EXAMPLE}")
        return False
    if ckey is None:
        checker.problem(line, 'object has no "text" key', f"add the caption, {_EXAMPLE}")
        return False
    for key in (fkey, ckey):
        if not isinstance(obj[key], str):
            checker.problem(
                line, f'"{key}" is {json.dumps(obj[key])}, not a string',
                f"write it as a string in double quotes, {_EXAMPLE}",
            )
            return False
    return True


def jsonl_line(obj: dict, newline: str = "\n") -> str:
    """One JSON Lines record (UTF-8 text as is, not ``\\u`` escapes)."""
    return json.dumps(obj, ensure_ascii=False) + newline


def updated_jsonl_row(row: Row, caption: str, newline: str) -> str:
    """``row``'s object with a new caption; every other key, known or not, is kept."""
    assert isinstance(row.record, dict)
    obj = dict(row.record)
    ckey = next(k for k in JSONL_CAPTION_KEYS if k in obj)
    obj[ckey] = caption
    ending = row.raw[len(row.raw.rstrip("\r\n")):] or newline
    return jsonl_line(obj, ending)


def new_jsonl_row(parsed: ParsedFile, key: str, caption: str) -> str:
    """A line for an image the file does not list yet, with the key names the file uses."""
    return jsonl_line({parsed.filename_key: key, parsed.caption_key: caption}, parsed.newline)
