"""One open dataset being edited: captions, undo stack, journal, saving, outside changes.

The session is the single owner of caption state. Views and models read from it; every
change goes through ``apply`` (called by undo commands), which journals it first, so
an edit is durable from the moment it is made; autosave writes the caption files
shortly after edits stop. A poll notices files changed by other programs or desktops and
either reloads (nothing edited here) or reports conflicts (never overwrites silently).

Where the values are read from and written to is a few hooks (``_save_call``, ``_read_call``,
``_disk_state_call``, ``_watched_paths``, ``_target_name``), so that a text dataset's session
(:mod:`.text_session`) keeps its rows with the same undo, journal, autosave and conflict
handling: one of each in the app.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QUndoStack

from ..storage.dataset import (CaptionStore, DatasetError, ImageEntry, OpenedDataset, caption_files_snapshot,
                               convert_store, open_dataset, save_and_snapshot, store_format, store_path)
from ..storage.names import find_images
from ..storage.problems import Problem
from ..tags import BulkEdit, compute_changes
from ..workers.tasks import TaskRunner
from .commands import SetCaptionsCommand
from .conflicts import Choice, Conflict
from .disk_watch import DiskWatch
from .journal import Journal
from .merge import merge_reload, sort_recovered

AUTOSAVE_MS = 1500
POLL_MS = 2000


def _disk_state(root: Path, store, rels: list[str]) -> tuple[dict[str, tuple[int, int]], list[str]]:
    """Stat of the caption files and the image list; runs in a worker."""
    images = [p.relative_to(root).as_posix() for p in find_images(root)]
    return caption_files_snapshot(store, rels), images


class DatasetSession(QObject):
    """The captions of one dataset folder and everything that keeps them safe."""

    noun = "caption"  # what the values are called in messages

    captionsChanged = Signal(list)  # rows whose caption changed
    datasetReset = Signal()  # the list of images changed (reload)
    dirtyChanged = Signal(bool)
    saved = Signal(str)  # a message for the status bar
    saveFailed = Signal(str)
    saveProgress = Signal(int, int)  # files written, files to write
    converted = Signal(str)  # the new format
    conflictsFound = Signal(list)  # list[Conflict]
    message = Signal(str)

    def __init__(self, opened: OpenedDataset, runner: TaskRunner | None = None, parent: QObject | None = None,
                 autosave_ms: int = AUTOSAVE_MS, poll_ms: int = POLL_MS) -> None:
        super().__init__(parent)
        self.runner = runner or TaskRunner(parent=self)
        self.root = opened.root
        self.undo_stack = QUndoStack(self)
        self.journal = Journal(self.root)
        self.problems: list[Problem] = list(opened.problems)
        self.image_problems: dict[str, str] = {}
        self.pending_conflicts: list[Conflict] = []
        self._saving = False
        self._save_again = False
        self._checking = False
        self._was_dirty = False
        self._adopt(opened)
        self.file_snapshot = opened.snapshot
        self.autosave_timer = QTimer(self, singleShot=True, interval=autosave_ms)
        self.autosave_timer.timeout.connect(self.save)
        self.disk_watch = DiskWatch(self._watched_paths, self.check_disk, self, poll_ms)

    def _watched_paths(self) -> list[str]:
        """The folder and files whose changes the watcher reports."""
        paths = [str(self.root)]
        if self.format != "txt":
            paths.append(str(store_path(self.store)))
        return paths

    # -- state ---------------------------------------------------------------------------
    def _adopt(self, opened: OpenedDataset) -> None:
        self.store = opened.store
        self.entries: list[ImageEntry] = opened.entries
        self.captions: list[str] = list(opened.captions)
        self.row_of = {e.rel: i for i, e in enumerate(self.entries)}
        self.saved_captions: dict[str, str] = {e.rel: c for e, c in zip(self.entries, opened.captions)}
        self.dirty: set[str] = set()

    @property
    def format(self) -> str:
        """``csv``, ``jsonl`` or ``txt``."""
        return store_format(self.store)

    def rels(self) -> list[str]:
        """Relative paths of all images, in row order."""
        return [e.rel for e in self.entries]

    def caption(self, rel: str) -> str:
        """Current caption of an image."""
        return self.captions[self.row_of[rel]]

    def is_dirty(self) -> bool:
        """Whether some caption differs from the caption files on disk."""
        return bool(self.dirty)

    def _update_dirty(self, rel: str) -> None:
        if self.captions[self.row_of[rel]] != self.saved_captions.get(rel, ""):
            self.dirty.add(rel)
        else:
            self.dirty.discard(rel)

    def _emit_dirty(self) -> None:
        now = self.is_dirty()
        if now != self._was_dirty:
            self._was_dirty = now
            self.dirtyChanged.emit(now)

    # -- editing ---------------------------------------------------------------------------
    def apply(self, new: dict[str, str], journal: bool = True) -> None:
        """Set captions (journaled first); used by undo commands, not by views directly."""
        new = {rel: text for rel, text in new.items() if rel in self.row_of}
        if not new:
            return
        if journal:
            try:
                self.journal.append({rel: (self.saved_captions.get(rel, ""), text) for rel, text in new.items()})
            except OSError as exc:
                self.message.emit(f"Could not write the edit journal ({exc.strerror}); save soon with Ctrl+S.")
        rows = []
        for rel, text in new.items():
            row = self.row_of[rel]
            self.captions[row] = text
            self._update_dirty(rel)
            rows.append(row)
        self.captionsChanged.emit(sorted(rows))
        self._emit_dirty()
        if self.autosave_timer.interval() > 0:
            self.autosave_timer.start()

    def set_captions(self, new: dict[str, str], name: str, typing: bool = False) -> int:
        """Change captions as one undo step named ``name``; returns how many changed."""
        changes = {rel: (self.caption(rel), text) for rel, text in new.items()
                   if rel in self.row_of and self.caption(rel) != text}
        if changes:
            self.undo_stack.push(SetCaptionsCommand(self, changes, name, typing=typing))
        return len(changes)

    def preview_bulk(self, edit: BulkEdit, rows: list[int]) -> dict[int, tuple[str, str]]:
        """What ``edit`` would change over ``rows`` (used for the dialog's count)."""
        return compute_changes({row: self.captions[row] for row in rows}, edit)

    def bulk(self, edit: BulkEdit, rows: list[int], scope_name: str = "") -> int:
        """Run a bulk edit over ``rows`` as one undo step; returns how many captions changed."""
        changes = self.preview_bulk(edit, rows)
        if not changes:
            return 0
        by_rel = {self.entries[row].rel: pair for row, pair in changes.items()}
        suffix = f" in {len(by_rel)} {scope_name + ' ' if scope_name else ''}image{'s' if len(by_rel) != 1 else ''}"
        self.undo_stack.push(SetCaptionsCommand(self, by_rel, edit.describe() + suffix))
        return len(by_rel)

    # -- saving ---------------------------------------------------------------------------
    def save(self, blocking: bool = False) -> bool:
        """Write the caption files (atomically, in a worker unless ``blocking``).

        Refuses while conflicts with outside changes are pending: saving then would
        overwrite someone else's edits without the user deciding.
        """
        self.autosave_timer.stop()
        if self.pending_conflicts:
            self.message.emit(f"Not saved: {self.noun}s were changed on disk too; settle the conflicts first.")
            return False
        if not self.dirty:
            return True
        if self._saving:
            self._save_again = True
            return False
        snapshot = dict(zip(self.rels(), self.captions))
        count = len(self.dirty)
        self._saving = True
        write, args = self._save_call(snapshot)
        if blocking:
            try:
                saved = write(*args)
            except (OSError, DatasetError) as exc:
                self._save_failed(str(exc))
                return False
            self._save_done(snapshot, count, saved)
            return True
        self.runner.start(write, *args, with_progress=True,
                          on_progress=self.saveProgress.emit,
                          on_done=lambda saved: self._save_done(snapshot, count, saved), on_error=self._save_failed)
        return True

    def _save_call(self, snapshot: dict[str, str]) -> tuple[Callable[..., Any], tuple]:
        """The worker function that writes ``snapshot`` (all values) and its arguments; it takes
        ``progress``/``cancel`` keywords and returns ``(the store to use from now on, files' stat)``."""
        return save_and_snapshot, (self.store, snapshot)

    def _read_call(self) -> tuple[Callable[..., Any], tuple]:
        """The worker function that reads the dataset again, and its arguments."""
        return open_dataset, (self.root, self.format)

    def _disk_state_call(self) -> tuple[Callable[..., Any], tuple]:
        """The worker function that returns ``(files' stat, names of the rows)`` to notice outside changes."""
        return _disk_state, (self.root, self.store, self.rels())

    def _save_done(self, snapshot: dict[str, str], count: int,
                   saved: tuple[CaptionStore, dict[str, tuple[int, int]]]) -> None:
        self._saving = False
        self.store, files = saved
        for rel, text in snapshot.items():
            self.saved_captions[rel] = text
        for rel in list(self.dirty):
            self._update_dirty(rel)
        if not self.dirty:
            self.journal.clear()
        self.file_snapshot = files  # our own write is not an outside change
        self._emit_dirty()
        self.saved.emit(f"Saved {count} {self.noun}{'s' if count != 1 else ''} to {self._target_name()}")
        if self._save_again:
            self._save_again = False
            self.save()

    def _save_failed(self, message: str) -> None:
        self._saving = False
        self.saveFailed.emit(f"Could not save {self.noun}s: {message} Your edits are kept in the journal.")

    def _target_name(self) -> str:
        return store_path(self.store).name if self.format != "txt" else ".txt files"

    def convert(self, target: str, blocking: bool = False) -> None:
        """Write all captions in another format (the old files stay) and use it from now on."""
        snapshot = dict(zip(self.rels(), self.captions))
        rels = self.rels()

        def work():
            store = convert_store(self.root, target, rels, snapshot)
            return store, caption_files_snapshot(store, rels)

        def done(result) -> None:
            self.store, self.file_snapshot = result
            self.saved_captions = dict(snapshot)
            for rel in list(self.dirty):
                self._update_dirty(rel)
            if not self.dirty:
                self.journal.clear()
            self._emit_dirty()
            self.converted.emit(self.format)
            self.saved.emit(f"Converted captions to {self._target_name()}")

        self.autosave_timer.stop()
        if blocking:
            done(work())
        else:
            self.runner.start(work, on_done=done, on_error=lambda m: self.saveFailed.emit(f"Could not convert: {m}"))

    # -- recovery --------------------------------------------------------------------------
    def replay_journal(self) -> int:
        """Re-apply edits a killed session left in the journal, save them, remove the journal.

        Returns how many captions were recovered. When the file on disk changed since
        (neither the journal's base nor its value), the edit becomes a conflict.
        """
        recovered = Journal.read(self.root)
        if recovered is None:
            return 0
        take, conflicts = sort_recovered(recovered.changes, dict(zip(self.rels(), self.captions)))
        self.journal.clear()
        if take:
            self.set_captions(take, f"Recover {len(take)} unsaved edit{'s' if len(take) != 1 else ''}")
            self.save(blocking=True)
        if conflicts:
            for c in conflicts:
                self.apply({c.rel: c.mine})
            self.pending_conflicts = conflicts
            self.conflictsFound.emit(conflicts)
        return len(take) + len(conflicts)

    # -- outside changes ---------------------------------------------------------------------
    def check_disk(self) -> None:
        """Look for caption files or images changed by someone else (in a worker)."""
        if self._saving or self._checking or self.pending_conflicts:
            return
        self._checking = True
        read_state, args = self._disk_state_call()
        self.runner.start(read_state, *args, on_done=self._disk_state_ready, on_error=self._check_failed)

    def _check_failed(self, message: str) -> None:
        self._checking = False
        self.message.emit(f"Cannot check {self.root} for changes: {message}")

    def _disk_state_ready(self, state: tuple[dict[str, tuple[int, int]], list[str]]) -> None:
        snapshot, images = state
        if self._saving or (snapshot == self.file_snapshot and images == self.rels()):
            self._checking = False
            return
        read, args = self._read_call()
        self.runner.start(read, *args, on_done=self._reloaded, on_error=self._check_failed)

    def reload(self, blocking: bool = False) -> None:
        """Re-read the folder (in a worker unless ``blocking``) and merge with local edits."""
        read, args = self._read_call()
        if blocking:
            self._reloaded(read(*args))
            return
        self._checking = True
        self.runner.start(read, *args, on_done=self._reloaded, on_error=self._check_failed)

    def _reloaded(self, fresh: OpenedDataset) -> None:
        """Merge a fresh read of the folder with the edits made here."""
        self._checking = False
        if self._saving:
            return  # our own write is in flight; the next poll looks again
        merge = merge_reload(((e.rel, theirs) for e, theirs in zip(fresh.entries, fresh.captions)),
                             self.saved_captions, dict(zip(self.rels(), self.captions)))
        same_images = [e.rel for e in fresh.entries] == self.rels()
        old_captions = self.captions
        self._adopt(fresh)
        self.problems = list(fresh.problems)
        for rel, text in merge.mine_kept.items():
            if rel in self.row_of:
                self.captions[self.row_of[rel]] = text
                self._update_dirty(rel)
        self.file_snapshot = fresh.snapshot
        if same_images:
            changed = [i for i, (a, b) in enumerate(zip(old_captions, self.captions)) if a != b]
            if changed:
                self.captionsChanged.emit(changed)
        else:
            self.datasetReset.emit()
        self._emit_dirty()
        if merge.taken:
            self.message.emit(f"Reloaded {merge.taken} {self.noun}{'s' if merge.taken != 1 else ''} changed on disk")
        if merge.conflicts:
            self.pending_conflicts = merge.conflicts
            self.autosave_timer.stop()
            self.conflictsFound.emit(merge.conflicts)

    def resolve_conflicts(self, choices: dict[str, Choice]) -> None:
        """Settle pending conflicts; the outcome is one undo step and is saved."""
        conflicts, self.pending_conflicts = self.pending_conflicts, []
        new: dict[str, str] = {}
        for conflict in conflicts:
            if conflict.rel not in self.row_of:
                continue
            # Their version is what is on disk now: it becomes the base for saving.
            self.saved_captions[conflict.rel] = conflict.theirs
            new[conflict.rel] = conflict.resolved(choices.get(conflict.rel, Choice.MINE))
        for rel in new:
            self._update_dirty(rel)
        self.set_captions(new, "Settle conflicts with changes on disk")
        for rel in new:
            self._update_dirty(rel)
        self._emit_dirty()
        self.save()

    def shutdown(self) -> None:
        """Stop timers and save what is unsaved (blocking: the app is closing)."""
        self.disk_watch.stop()
        self.autosave_timer.stop()
        self.runner.pool.waitForDone(10_000)
        self._saving = False
        if not self.pending_conflicts:
            self.save(blocking=True)
        self.journal.close()
