"""The text dataset on screen: its session, the page's table, editor and rendering, saving, problems, conflicts.

One :class:`TextDatasetSession` at a time, shown on the :class:`~.text_page.TextDatasetPage`.
The dataset controller reads a folder or file in a worker and hands a text dataset here
(:meth:`show`); this controller tells the window through signals, as the image one does.
Which tokenizer counts and which template renders follows the training config open in
the Train tab (:meth:`set_training_config`); the tokenizer is read in a worker.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QWidget

from trainer.llm.rows import row_format

from ..chat.preview import ExamplePreview, count_rows
from ..chat.tokenizer import ChatTokenizer, load_tokenizer
from ..chat.training_view import TrainingView
from ..dialogs.bulk_dialog import BulkEditDialog
from ..dialogs.conflict_dialog import ConflictDialog
from ..editing.conflicts import Choice, Conflict
from ..editing.text_session import TextDatasetSession
from ..storage.chat_fields import row_fields
from ..storage.json_records import parse
from ..storage.text_dataset import OpenedTextDataset
from ..tags import BulkEdit, Operation
from ..workers.tasks import FunctionTask, TaskRunner
from .problems_panel import ProblemsPanel
from .status_strip import StatusStrip
from .text_page import TextDatasetPage

PREVIEW_MS = 150  # the rendering follows typing after this pause
SCOPES = ("all", "filtered", "selected")


class TextDatasetController(QObject):
    """Owns the session of the text dataset on screen (or none)."""

    sessionChanged = Signal(object)  # the TextDatasetSession, or None once closed
    datasetOpened = Signal(str)  # the root (file or folder) of the text dataset now on screen
    problemsCounted = Signal(int)
    conflictsPending = Signal(bool)

    def __init__(self, runner: TaskRunner, page: TextDatasetPage, problems: ProblemsPanel, status: StatusStrip,
                 parent: QWidget, autosave_ms: int = 1500, poll_ms: int = 2000) -> None:
        super().__init__(parent)
        self.runner, self.page, self.panel, self.status = runner, page, problems, status
        self.autosave_ms, self.poll_ms = autosave_ms, poll_ms
        self.session: TextDatasetSession | None = None
        self.conflict_dialog: ConflictDialog | None = None
        self.find_dialog: BulkEditDialog | None = None
        self.training = TrainingView()  # the tokenizer, template and cutoff_len examples are shown with
        self._counting: FunctionTask | None = None
        self._preview_timer = QTimer(self, singleShot=True, interval=PREVIEW_MS)
        self._preview_timer.timeout.connect(self.update_preview)
        page.table.currentRowChanged.connect(self._current_changed)
        page.editor.fieldEdited.connect(self._field_edited)
        page.editor.addSystemRequested.connect(lambda row: self.session and self.session.add_system(row))
        page.table.show_tokens(False)

    # -- opening and closing ---------------------------------------------------------------------
    def show(self, opened: OpenedTextDataset) -> None:
        """Put a text dataset read by a worker on screen (closing the one shown)."""
        self.close()
        session = TextDatasetSession(opened, self.runner, self, autosave_ms=self.autosave_ms, poll_ms=self.poll_ms)
        self.session = session
        self.page.model.set_session(session)
        self.page.editor.set_session(session)
        session.captionsChanged.connect(self._rows_changed)
        session.datasetReset.connect(self._reset)
        session.problemsChanged.connect(self.show_problems)
        session.dirtyChanged.connect(lambda _d: self._update_save_state())
        session.saved.connect(lambda m: (self.status.show_message(m, 4000), self._update_save_state()))
        session.saveFailed.connect(lambda m: self.status.warn("Examples not saved", m))
        session.conflictsFound.connect(self._conflicts_found)
        session.message.connect(lambda m: self.status.show_message(m, 8000))
        self.status.show_format(session.format)
        self.sessionChanged.emit(session)
        recovered = session.replay_journal()
        self.show_problems()
        self._update_save_state()
        self.page.update_count()
        self._count_tokens()
        message = f"Opened {opened.root.name}: {len(opened.entries):,} examples ({session.format})"
        if recovered:
            message += f"; recovered {recovered} unsaved edit{'s' if recovered != 1 else ''} from the last session"
        self.status.show_message(message, 8000)
        if self.page.model.rowCount():
            self.page.table.select_source_row(0)
        self.datasetOpened.emit(str(opened.root))

    def close(self) -> None:
        """Save and close the text dataset on screen (if any)."""
        if self.session is None:
            return
        session = self.session
        self.page.editor.commit()
        if self._counting is not None:
            self._counting.cancel_token.cancel()
        session.shutdown()
        self.page.editor.set_session(None)
        self.page.model.set_session(None)
        self.session = None
        self.status.show_save_state("")
        self.status.show_format("")
        self.sessionChanged.emit(None)
        session.deleteLater()

    def save(self) -> None:
        """Save now (edits also save by themselves)."""
        if self.session is not None:
            self.page.editor.commit()
            self.session.save()

    def reload(self) -> None:
        """Read the files again, merging with unsaved edits."""
        if self.session is not None:
            self.session.reload()

    # -- the table, the editor and the rendering ---------------------------------------------------
    def _current_changed(self, row: int) -> None:
        self.page.editor.show_row(row)
        self.update_preview()

    def _field_edited(self, row: int, path: tuple, text: str, label: str) -> None:
        if self.session is not None and 0 <= row < len(self.session.entries):
            self.session.set_field(row, path, text, label)

    def _rows_changed(self, rows: list[int]) -> None:
        self.page.editor.refresh(rows)
        if self.page.table.current_row() in rows:
            self._preview_timer.start()
        self._count_tokens(rows)

    def _reset(self) -> None:
        self.page.editor.show_row(self.page.table.current_row())
        self.update_preview()
        self._count_tokens()

    def update_preview(self) -> None:
        """Render the current example through the template, with its trained text and token count."""
        self._preview_timer.stop()
        row = self.page.table.current_row()
        view = self.training
        preview = None
        if self.session is not None and row >= 0:
            example, issues = self.session.example(row)
            preview = view.preview(example) if example is not None else \
                ExamplePreview(error="; ".join(issues) + ". Fix the example to see how it trains.")
        self.page.preview.show_preview(preview, view.template_label(), view.note() if preview else "", view.cutoff_len,
                                       view.tokenizer.exact, view.tokenizer.description)

    # -- tokens --------------------------------------------------------------------------------------
    def set_training_config(self, raw: dict, config_dir: Path | None) -> None:
        """Follow the training config being edited: its base model's tokenizer, ``cutoff_len``, ``chat_template``."""
        folder = self.training.read_config(raw, config_dir)
        if folder == self.training.base_model and folder is not None:
            self._use_tokenizer(self.training.tokenizer, self.training.reason)  # the template may have changed
            return
        self.training.base_model = folder
        self.runner.start(load_tokenizer, folder, on_done=lambda result: self._tokenizer_loaded(folder, result),
                          owner=self.page)

    def _tokenizer_loaded(self, folder: Path | None, result: tuple[ChatTokenizer, str]) -> None:
        if folder != self.training.base_model:
            return  # another config was opened meanwhile
        self._use_tokenizer(*result)

    def _use_tokenizer(self, tokenizer: ChatTokenizer, reason: str) -> None:
        self.training.use(tokenizer, reason)
        self.page.model.tokens = {}
        self.page.table.show_tokens(tokenizer.exact)
        self._count_tokens()
        self.update_preview()

    def _count_tokens(self, rows: list[int] | None = None) -> None:
        """Count the tokens of ``rows`` (all when None) in a worker; only with the model's tokenizer."""
        session, view = self.session, self.training
        if session is None or not view.tokenizer.exact:
            return
        if rows is None and self._counting is not None:
            self._counting.cancel_token.cancel()
        indices = range(len(session.entries)) if rows is None else rows
        items = [(session.entries[r].rel, session.captions[r], session.entries[r].fmt) for r in indices
                 if session.entries[r].editable]
        tokenizer = view.tokenizer

        def done(counts: dict[str, int]) -> None:
            if session is self.session and tokenizer is view.tokenizer:
                self.page.model.set_tokens(counts, True)

        task = self.runner.start(count_rows, items, tokenizer, view.template, with_progress=True, on_done=done,
                                 owner=self.page)
        if rows is None:
            self._counting = task

    # -- problems, find and replace, conflicts ----------------------------------------------------
    def show_problems(self) -> None:
        """List the dataset's problems (each with its file and line) in the Problems pane."""
        if self.session is None:
            return
        self.panel.show_problems(self.session.problems, {})
        self.problemsCounted.emit(len(self.session.problems))
        self.update_preview()

    def go_to(self, path: str, line: int) -> None:
        """Select the row a problem at ``path:line`` is about (showing it even if the filter hid it)."""
        if self.session is None:
            return
        row = self.session.row_at(Path(path), line)
        if row is None:
            return
        if not self.page.table.select_source_row(row):
            self.page.filter_bar.search.clear()
            self.page.filter_bar.problems.setChecked(False)
            self.page.filter_bar.filterChanged.emit(self.page.filter_bar.current())
            self.page.table.select_source_row(row)

    def scope_rows(self, scope: str) -> list[int]:
        """Source rows of a scope: 'all', 'filtered' or 'selected'."""
        if scope == "selected":
            return self.page.table.selected_rows()
        if scope == "filtered":
            return self.page.table.filtered_rows()
        return list(range(self.page.model.rowCount()))

    def run_replace(self, edit: BulkEdit, scope: str) -> int:
        """Find and replace in the texts of a scope's examples, as one undo step; returns how many changed."""
        if self.session is None:
            return 0
        self.page.editor.commit()
        changed = self.session.bulk(edit, self.scope_rows(scope), scope if scope != "all" else "")
        self.status.show_message(f"{edit.describe()}: {changed:,} example{'s' if changed != 1 else ''} changed", 5000)
        return changed

    def open_find_replace(self) -> BulkEditDialog | None:
        """The find-and-replace dialog over the examples (non-blocking; applies when accepted)."""
        session = self.session
        if session is None:
            return None
        counts = {scope: len(self.scope_rows(scope)) for scope in SCOPES}
        dialog = BulkEditDialog(counts, lambda edit, scope: session.preview_bulk(edit, self.scope_rows(scope)),
                                Operation.REPLACE, self.page.window(),
                                operations=((Operation.REPLACE, "Find and replace"),), noun="example")
        dialog.accepted.connect(lambda: self.run_replace(dialog.edit(), dialog.scope()))
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()
        self.find_dialog = dialog
        return dialog

    def _update_save_state(self) -> None:
        session = self.session
        if session is None:
            self.status.show_save_state("")
        elif session.pending_conflicts:
            self.status.show_save_state("⚠ Conflicts: not saved")
        elif session.is_dirty():
            self.status.show_save_state(f"● {len(session.dirty)} unsaved (autosave on)")
        else:
            self.status.show_save_state("✓ All saved")

    def _conflicts_found(self, _conflicts: list[Conflict]) -> None:
        self.conflictsPending.emit(True)
        self._update_save_state()
        self.show_conflicts()

    def show_conflicts(self) -> None:
        """Ask which version to keep of the examples changed both on disk and here (non-blocking)."""
        session = self.session
        if session is None or not session.pending_conflicts:
            return
        if self.conflict_dialog is not None:
            self.conflict_dialog.raise_()
            return
        where = {session.entries[session.row_of[c.rel]].file.name for c in session.pending_conflicts
                 if c.rel in session.row_of}
        dialog = ConflictDialog(session.pending_conflicts, ", ".join(sorted(where)) or session.root.name,
                                self.page.window(), item="example",
                                choices=((Choice.MINE, "Keep mine"), (Choice.THEIRS, "Take theirs")),
                                shown=_texts, noun="example")
        self.conflict_dialog = dialog
        dialog.settle(session.resolve_conflicts,
                      settled=lambda: (self.conflictsPending.emit(False), self._update_save_state()),
                      closed=lambda: setattr(self, "conflict_dialog", None))


def _texts(value: str) -> str:
    """A row's value as a person reads it in the conflict dialog: "User 1: …" lines, not JSON."""
    obj = parse(value)
    fields = row_fields(obj, row_format(obj) or "") if isinstance(obj, dict) else []
    return "\n".join(f"{f.label}: {f.text}" for f in fields) if fields else value
