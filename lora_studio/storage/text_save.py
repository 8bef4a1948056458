"""Saving edited rows of a text dataset: only those rows' text changes, every other byte stays.

Each file is rewritten atomically (``trainer.fsutil.atomic_write_bytes``: a temporary file,
fsync, rename), starting from the text read when the file was opened or last saved:

- ``.jsonl``: the edited row's line is replaced by the row's JSON on one line, written as
  that line was (its separators, ``\\u`` escapes or not); the line ending, the other lines and
  blank lines are the file's own, byte for byte;
- ``.json``: only the edited element's span (from its ``{`` to its ``}``) is replaced, written
  with the element's own indent and separators, its later lines shifted to the element's
  column; the brackets, commas, whitespace and the other elements stay as they were. The
  whole file is never re-serialized.

An edited row keeps its unknown keys and their order: its value is the JSON object read
(:mod:`.chat_fields` replaces strings in it), so only the edited strings differ.

Before writing, each file is compared with the text it was read as; when it changed on
disk meanwhile (another desktop, a script on the share), nothing is written and
:class:`ChangedOnDisk` says which files: the session then re-reads them and settles
conflicts, never overwriting someone else's edit. Plain Python, no Qt (runs in a worker).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from trainer.fsutil import atomic_write_bytes

from .dataset import DatasetError
from .json_records import detect_style, dump, encode, line_prefix
from .text_dataset import OpenedTextDataset, TextFile, read_text_file, row_value, text_files_snapshot


@dataclass
class ChangedOnDisk:
    """A save that found files changed since they were read: nothing was written."""

    paths: list[Path] = field(default_factory=list)


def changed_rows(opened: OpenedTextDataset, values: dict[str, str]) -> dict[Path, dict[int, object]]:
    """``{file: {row ordinal: new JSON value}}`` for the rows whose value differs from the file's."""
    changes: dict[Path, dict[int, object]] = {}
    for row in opened.entries:
        value = values.get(row.rel)
        if value is None or value == row_value(row):
            continue
        if not row.editable:
            raise DatasetError(f"Not saved: {row.rel} is not a JSON object and cannot be edited here.")
        changes.setdefault(row.file, {})[row.index] = json.loads(value)
    return changes


def render_file(text_file: TextFile, rows: dict[int, object]) -> str:
    """The file's text with ``rows`` (ordinal -> new value) rewritten in place, the rest unchanged."""
    text = text_file.text
    # From the last row to the first: a replacement leaves the offsets of earlier rows valid.
    for index in sorted(rows, reverse=True):
        span = text_file.spans[index]
        prefix = line_prefix(text, span.start) if text_file.kind == "json" else ""
        style = detect_style(text[span.start:span.end], prefix)
        if text_file.kind == "jsonl":
            style = dataclasses.replace(style, indent=None)  # one row, one line
        text = text[:span.start] + dump(rows[index], style, prefix) + text[span.end:]
    return text


def save_text_dataset(opened: OpenedTextDataset, values: dict[str, str], progress=None,
                      cancel=None) -> tuple[OpenedTextDataset | ChangedOnDisk, dict[str, tuple[int, int]]]:
    """Write the rows of ``values`` (rel -> value) that changed; return the dataset as saved and its snapshot.

    Returns ``(ChangedOnDisk, {})`` without writing anything when a file to write changed on
    disk since it was read. ``cancel`` is accepted for the worker interface, but a save that
    has begun completes. ``progress(done, total)`` counts files.
    """
    del cancel
    changes = changed_rows(opened, values)
    by_path = {f.path: f for f in opened.files}
    for path in changes:
        reason = by_path[path].read_only
        if reason:
            raise DatasetError(f"Not saved: {by_path[path].name}: {reason}.")
    stale = [path for path in changes if not _unchanged_on_disk(by_path[path])]
    if stale:
        return ChangedOnDisk(stale), {}
    files = []
    for done, text_file in enumerate(opened.files):
        if progress is not None:
            progress(done, len(opened.files))
        rows = changes.get(text_file.path)
        if rows:
            atomic_write_bytes(text_file.path, encode(render_file(text_file, rows)))
            text_file = read_text_file(text_file.path, text_file.name)
        files.append(text_file)
    snapshot = text_files_snapshot(opened.root)
    return OpenedTextDataset(opened.root, files, snapshot), snapshot


def _unchanged_on_disk(text_file: TextFile) -> bool:
    try:
        return text_file.path.read_bytes() == encode(text_file.text)
    except OSError as exc:
        raise DatasetError(f"Not saved: {text_file.path} cannot be read ({exc.strerror}).") from None
