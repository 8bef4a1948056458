"""Where each row of a ``.jsonl`` / ``.json`` text dataset sits in its file, and how it is written.

The trainer's reader (``trainer.llm.formats``) says what the rows mean and what is wrong
with them; an editor also needs *where* each row is, to rewrite one row and leave every
other byte of the file alone. A file's text is decoded with ``surrogateescape``, so that
bytes that are not UTF-8 (a damaged line) survive a save unchanged, and a BOM stays the
first character of the text.

- ``.jsonl``: a row is one non-blank line (its ``\\r`` of a CRLF ending is not part of it);
- ``.json``: a row is one element of the top-level array, from its first to its last
  character. A syntax error ends the list there (as it ends the trainer's reading).

:func:`detect_style` reads how a row was written (separators, ``\\u`` escapes, indent) and
:func:`dump` writes an edited row the same way, so a rewritten row looks like its
neighbours. Plain Python, no Qt.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

BOM_CHAR = "\ufeff"
_WHITESPACE = re.compile(r"[ \t\n\r]*")  # JSON's whitespace, exactly
_ESCAPED_NON_ASCII = re.compile(r"\\u(?:00[89a-fA-F][0-9a-fA-F]|0[1-9a-fA-F][0-9a-fA-F]{2}|[1-9a-fA-F][0-9a-fA-F]{3})")


@dataclass(frozen=True)
class Span:
    """One row of a file: its 0-based ordinal, the 1-based line it starts on, its text's bounds."""

    index: int
    line: int
    start: int
    end: int


@dataclass(frozen=True)
class JsonStyle:
    """How a row's JSON was written; ``indent`` is None for a row on one line."""

    item_sep: str = ", "
    key_sep: str = ": "
    ensure_ascii: bool = False
    indent: str | None = None


def decode(data: bytes) -> str:
    """The file's text, reversible to the same bytes with :func:`encode` whatever they are."""
    return data.decode("utf-8", errors="surrogateescape")


def encode(text: str) -> bytes:
    """The bytes of a text made by :func:`decode` (edited parts are plain UTF-8)."""
    return text.encode("utf-8", errors="surrogateescape")


def is_clean(text: str) -> bool:
    """False when the text holds bytes that were not UTF-8 (kept as surrogates by :func:`decode`)."""
    return not any("\udc80" <= ch <= "\udcff" for ch in text)


def jsonl_spans(text: str) -> list[Span]:
    """A span per non-blank line (blank lines are not rows, as for the trainer)."""
    spans: list[Span] = []
    pos = 1 if text.startswith(BOM_CHAR) else 0
    number = 1
    while pos <= len(text):
        stop = text.find("\n", pos)
        stop = len(text) if stop < 0 else stop
        end = stop - 1 if stop > pos and text[stop - 1] == "\r" else stop
        if text[pos:end].strip():
            spans.append(Span(len(spans), number, pos, end))
        pos, number = stop + 1, number + 1
    return spans


def json_spans(text: str) -> tuple[list[Span], bool]:
    """``(spans, complete)``: a span per element of the top-level array; ``complete`` is False when
    the text is not one JSON array (a syntax error, or another value): the spans found before the
    error are returned, and the file must not be rewritten."""
    decoder = json.JSONDecoder()
    pos = _WHITESPACE.match(text, 1 if text.startswith(BOM_CHAR) else 0).end()
    if not text.startswith("[", pos):
        return [], pos == len(text)  # an empty file is complete (and has no rows)
    pos = _WHITESPACE.match(text, pos + 1).end()
    spans: list[Span] = []
    if text.startswith("]", pos):
        return spans, not text[pos + 1:].strip(" \t\n\r")
    line, counted = 1, 0
    while True:
        line += text.count("\n", counted, pos)  # counted as we go: one pass over the text
        counted = pos
        try:
            _, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            return spans, False
        spans.append(Span(len(spans), line, pos, end))
        pos = _WHITESPACE.match(text, end).end()
        if text.startswith(",", pos):
            pos = _WHITESPACE.match(text, pos + 1).end()
            continue
        return spans, text.startswith("]", pos) and not text[pos + 1:].strip(" \t\n\r")


def parse(raw: str) -> object | None:
    """The JSON value of a row's text, or None when it is not valid JSON (or not UTF-8)."""
    if not is_clean(raw):
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return None


def canonical(value: object) -> str:
    """One string per JSON value, key order kept: what the editing session compares and journals."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def line_prefix(text: str, start: int) -> str:
    """The whitespace before ``start`` on its line ('' when something else precedes it there)."""
    before = text[text.rfind("\n", 0, start) + 1:start]
    return before if not before.strip() else ""


def detect_style(raw: str, prefix: str = "") -> JsonStyle:
    """How ``raw`` (one row's text, starting on a line after ``prefix``) was written."""
    item_sep = key_sep = None
    in_string = escaped = False
    for pos, ch in enumerate(raw):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch == ":" and key_sep is None:
            key_sep = ": " if raw.startswith(" ", pos + 1) else ":"
        elif ch == "," and item_sep is None and not raw.startswith("\n", pos + 1) \
                and not raw.startswith("\r\n", pos + 1):
            item_sep = ", " if raw.startswith(" ", pos + 1) else ","
        if key_sep is not None and item_sep is not None:
            break
    indent = None
    newline = raw.find("\n")
    if newline >= 0:
        second = raw[newline + 1:]
        lead = second[:len(second) - len(second.lstrip(" \t"))]
        indent = lead[len(prefix):] if lead.startswith(prefix) and len(lead) > len(prefix) else (lead or "  ")
    # Without any escaped non-ASCII character, the row is written as text: new characters are too.
    ascii_only = bool(_ESCAPED_NON_ASCII.search(raw)) and raw.isascii()
    # A row without a comma says nothing of its item separator: a compact row is compact throughout.
    item_sep = item_sep or ("," if key_sep == ":" else ", ")
    return JsonStyle(item_sep, key_sep or ": ", ascii_only, indent)


def dump(value: object, style: JsonStyle, prefix: str = "") -> str:
    """``value`` as JSON in ``style``; the lines of an indented row after its first start with
    ``prefix`` (the row's own indentation inside an array)."""
    if style.indent is None:
        return json.dumps(value, ensure_ascii=style.ensure_ascii, separators=(style.item_sep, style.key_sep))
    text = json.dumps(value, ensure_ascii=style.ensure_ascii, indent=style.indent, separators=(",", style.key_sep))
    return text.replace("\n", "\n" + prefix) if prefix else text
