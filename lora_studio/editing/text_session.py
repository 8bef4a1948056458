"""One open text dataset being edited: its rows, with the caption session's undo, journal, autosave and conflicts.

A :class:`TextDatasetSession` is a :class:`~.session.DatasetSession` whose values are rows:
each row's value is its JSON (:func:`~lora_studio.storage.json_records.canonical`), named
``file#ordinal``. Editing a turn replaces that string in the row's JSON and sets the row's
value through the same undo commands, journal and merge-on-reload as captions; saving
rewrites only the edited rows (:mod:`lora_studio.storage.text_save`). A save that finds a
file changed on disk writes nothing and re-reads it: edits made elsewhere are merged,
and an example edited on both sides becomes a conflict for the user to settle.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from trainer.llm.formats import Example
from trainer.llm.rows import check_row

from ..storage.chat_fields import Field, add_system_message, row_fields, system_path, with_text
from ..storage.json_records import canonical
from ..storage.text_dataset import OpenedTextDataset, open_text_dataset, text_files_snapshot
from ..storage.text_save import ChangedOnDisk, save_text_dataset
from ..tags import BulkEdit
from ..workers.tasks import TaskRunner
from .session import DatasetSession


def _text_disk_state(root: Path, rels: list[str]) -> tuple[dict[str, tuple[int, int]], list[str]]:
    """The files' stat (a file added to the folder changes it too); runs in a worker."""
    return text_files_snapshot(root), rels


class TextDatasetSession(DatasetSession):
    """The rows of one text dataset (a file or a folder of them) and everything that keeps them safe."""

    noun = "example"
    problemsChanged = Signal()  # the problems were read again (after a save or a reload)

    def __init__(self, opened: OpenedTextDataset, runner: TaskRunner | None = None, parent: QObject | None = None,
                 autosave_ms: int = 1500, poll_ms: int = 2000) -> None:
        self._parsed: dict[int, tuple[str, object, list[Field]]] = {}
        self._closing = False
        super().__init__(opened, runner, parent, autosave_ms, poll_ms)  # type: ignore[arg-type]

    # -- where the rows come from and go to (the caption session's hooks) ------------------------
    @property
    def format(self) -> str:
        """The row format(s) of the files, e.g. ``sharegpt``."""
        return self.store.format

    def _watched_paths(self) -> list[str]:
        return list(dict.fromkeys([str(self.root), *(str(f.path) for f in self.store.files)]))

    def _save_call(self, snapshot: dict[str, str]) -> tuple[Callable[..., Any], tuple]:
        return save_text_dataset, (self.store, snapshot)

    def _read_call(self) -> tuple[Callable[..., Any], tuple]:
        return open_text_dataset, (self.root,)

    def _disk_state_call(self) -> tuple[Callable[..., Any], tuple]:
        return _text_disk_state, (self.root, self.rels())

    def _target_name(self) -> str:
        return self.root.name

    def _adopt(self, opened: OpenedTextDataset) -> None:  # type: ignore[override]
        super()._adopt(opened)  # type: ignore[arg-type]
        self._parsed = {}
        self._index_problems()

    def _save_done(self, snapshot: dict[str, str], count: int, saved: tuple) -> None:
        if isinstance(saved[0], ChangedOnDisk):
            # Someone else wrote the file since it was read: nothing was written. Read it again;
            # the merge keeps the edits made here and reports those made on both sides.
            self._saving = False
            names = ", ".join(p.name for p in saved[0].paths)
            if self._closing:
                return  # the edits stay in the journal: the next opening merges them with the file
            self.message.emit(f"{names} changed on disk since it was read; merging before saving")
            self.reload()
            return
        lines = [e.line for e in self.entries]
        super()._save_done(snapshot, count, saved)
        # The rows as saved: their lines may have moved (an element of a .json array that grew).
        self.entries = self.store.entries
        self._index_problems()
        self.problemsChanged.emit()
        if lines != [e.line for e in self.entries]:
            self.captionsChanged.emit(list(range(len(self.entries))))

    def _reloaded(self, fresh: OpenedTextDataset) -> None:  # type: ignore[override]
        super()._reloaded(fresh)  # type: ignore[arg-type]
        self._index_problems()  # the caption session takes the fresh problems after adopting the rows
        self.problemsChanged.emit()
        if self.dirty and not self.pending_conflicts and self.autosave_timer.interval() > 0:
            self.autosave_timer.start()  # the edits kept through the merge still need saving

    def shutdown(self) -> None:
        """Stop timers and save what is unsaved; a file changed on disk meanwhile keeps the edits in the journal."""
        self._closing = True
        super().shutdown()

    # -- problems ---------------------------------------------------------------------------
    def _index_problems(self) -> None:
        # Each file's rows by starting line, so that a problem finds its row by bisection.
        self._starts: dict[Path, tuple[list[int], list[int]]] = {}
        for row, entry in enumerate(self.entries):
            lines, rows = self._starts.setdefault(entry.file, ([], []))
            lines.append(entry.line)
            rows.append(row)
        self.row_problems: dict[int, str] = {}
        for problem in self.problems:
            row = self.row_at(problem.path, problem.line)
            if row is not None and problem.is_error:
                self.row_problems.setdefault(row, problem.message)

    def row_at(self, path: Path, line: int | None) -> int | None:
        """The row a problem at ``path:line`` is about (the row starting on that line, or last before it)."""
        lines, rows = self._starts.get(Path(path), ([], []))
        place = bisect.bisect_right(lines, line) - 1 if line is not None else -1
        return rows[place] if place >= 0 else None

    # -- rows as the editor sees them -------------------------------------------------------
    def parsed(self, row: int) -> tuple[object, list[Field]]:
        """The row's current JSON and its editable fields (cached until its value changes)."""
        value = self.captions[row]
        cached = self._parsed.get(row)
        if cached is None or cached[0] != value:
            obj = json.loads(value) if self.entries[row].editable else None
            cached = (value, obj, row_fields(obj, self.entries[row].fmt))
            self._parsed[row] = cached
        return cached[1], cached[2]

    def example(self, row: int) -> tuple[Example | None, list[str]]:
        """The row as the trainer reads it now, or None and what is wrong with it."""
        obj, _ = self.parsed(row)
        entry = self.entries[row]
        if not isinstance(obj, dict) or not entry.fmt:
            return None, [self.row_problems.get(row, "the row is not a JSON object")]
        checked, issues = check_row(obj, entry.fmt)
        if checked is None:
            return None, [message for message, _ in issues]
        return Example(entry.file, entry.line, checked.system, checked.turns or [], checked.text, entry.fmt), []

    def where(self, row: int) -> str:
        """``file:line`` of a row, as people and messages name it."""
        entry = self.entries[row]
        name = entry.rel.rsplit("#", 1)[0]
        return f"{name}:{entry.line}"

    def set_field(self, row: int, path: tuple, text: str, label: str, typing: bool = True) -> bool:
        """Replace one string of a row (one undo step named after it; typing in it merges)."""
        obj, _ = self.parsed(row)
        if not isinstance(obj, dict):
            return False
        rel = self.entries[row].rel
        return bool(self.set_captions({rel: canonical(with_text(obj, path, text))},
                                      f"Edit {label} of {self.where(row)}", typing=typing))

    def add_system(self, row: int, text: str = "") -> bool:
        """Give a row a system prompt (a "system" key, or a first system message for OpenAI rows)."""
        obj, fields = self.parsed(row)
        if not isinstance(obj, dict) or any(f.role == "system" for f in fields):
            return False
        path = system_path(obj, self.entries[row].fmt)
        if path is not None:
            new = with_text(obj, path, text)
        elif self.entries[row].fmt == "openai":
            new = add_system_message(obj, text)
        else:
            return False
        return bool(self.set_captions({self.entries[row].rel: canonical(new)},
                                      f"Add a system prompt to {self.where(row)}"))

    # -- find and replace (the bulk edit of text rows) ----------------------------------------
    def _replaced(self, edit: BulkEdit, rows: list[int]) -> dict[int, tuple[object, list[tuple[str, str]]]]:
        """``{row: (new JSON, [(old text, new text) of each changed field])}`` of a replace over ``rows``."""
        replace = edit.compiler()
        out: dict[int, tuple[object, list[tuple[str, str]]]] = {}
        for row in rows:
            obj, fields = self.parsed(row)
            pairs, new = [], obj
            for field in fields:
                text = replace(field.text)
                if text != field.text:
                    new = with_text(new, field.path, text)
                    pairs.append((field.text, text))
            if pairs:
                out[row] = (new, pairs)
        return out

    def preview_bulk(self, edit: BulkEdit, rows: list[int]) -> dict[int, tuple[str, str]]:
        """What a find-and-replace would change over ``rows``: the first changed text of each row."""
        return {row: pairs[0] for row, (_, pairs) in self._replaced(edit, rows).items()}

    def bulk(self, edit: BulkEdit, rows: list[int], scope_name: str = "") -> int:
        """Run a find-and-replace over the texts of ``rows`` as one undo step; returns how many rows changed."""
        changed = self._replaced(edit, rows)
        if not changed:
            return 0
        values = {self.entries[row].rel: canonical(new) for row, (new, _) in changed.items()}
        count = len(values)
        scope = f"{scope_name} " if scope_name else ""
        self.set_captions(values, f"{edit.describe()} in {count} {scope}example{'s' if count != 1 else ''}")
        return count
