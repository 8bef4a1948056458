"""The "Auto-caption…" action, the bar above the grid, and the glue between the dialog and the session.

Kept out of the main window, which only places what this controller owns: its action
(the Edit menu, the toolbar) and its bar (between the filter bar and the grid). The
controller opens the dialog for the dataset on screen, applies the results to *that*
dataset's session as one undo step, and shows the bar when the dataset has a job to come
back to (still running, here or on a target, or ended with results not applied, e.g. after
the app was closed). It sees the window only through the collaborators it is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QWidget

from ..editing.session import DatasetSession
from ..jobs.follow import RunFolderJob
from ..jobs.places import job_context, places
from ..resources import icon
from ..targets_ui.store import app_context
from ..workers.tasks import TaskRunner
from .captioners import find_captioners, job_workspace
from .dialog import AutoCaptionDialog
from .reattach import PendingJob, find_pending_jobs, mark_handled, pending_job
from .reattach_bar import JobBar

BAR_REFRESH_MS = 3000
# The dialog's scope counts follow the grid's selection and filter, a moment after they settle.
SCOPE_DEBOUNCE_MS = 150


class AutoCaptionController(QObject):
    """Owns the action, the bar and the open dialog (one at a time).

    ``session`` and ``workspace`` give the dataset session and workspace on screen now;
    ``scope_rows`` the grid's source rows of a scope ('selected', 'filtered', 'all');
    ``flush_edits`` sends what is being typed to the session; ``show_message`` puts a line
    in the status bar. The window calls :meth:`dataset_opened`, :meth:`scopes_changed` and,
    when it closes, :meth:`shutdown`.
    """

    def __init__(self, *, session: Callable[[], DatasetSession | None], workspace: Callable[[], Path | None],
                 runner: TaskRunner, scope_rows: Callable[[str], list[int]], flush_edits: Callable[[], None],
                 show_message: Callable[[str, int], None], parent: QWidget, poll_ms: int = 300) -> None:
        super().__init__(parent)
        self._session, self._workspace, self.runner = session, workspace, runner
        self._scope_rows, self._flush_edits, self._show_message = scope_rows, flush_edits, show_message
        self._parent = parent  # the dialogs' parent
        self.poll_ms = poll_ms
        self.dialog: AutoCaptionDialog | None = None
        self._dialogs: list[AutoCaptionDialog] = []  # the open one, and closing ones whose job still stops
        self.action = QAction("Auto-&caption…", parent)
        self.action.setIcon(icon("autocaption"))
        self.action.setProperty("iconName", "autocaption")  # re-tinted with the theme
        self.action.setShortcut(QKeySequence("Ctrl+Shift+L"))
        self.action.setToolTip("Caption images with a captioning model (Ctrl+Shift+L)")
        self.action.setStatusTip("Caption images with a local captioning model; preview, then apply with undo")
        self.action.triggered.connect(self.open_dialog)
        self.action.setEnabled(session() is not None)
        # The dialog is not modal: its scope counts follow the grid's selection and filter.
        self._scope_timer = QTimer(self, singleShot=True, interval=SCOPE_DEBOUNCE_MS)
        self._scope_timer.timeout.connect(self._update_scopes)
        self.bar = JobBar(parent)  # the window puts it above the grid
        self.bar.showRequested.connect(self.show_job)
        self.bar.discardRequested.connect(self._discard)
        self._scan_serial = 0
        self._found: list[PendingJob] = []  # the open dataset's jobs from the last scan
        # A running job's line in the bar follows its progress (a small read every few seconds).
        self._bar_timer = QTimer(self, interval=BAR_REFRESH_MS)
        self._bar_timer.timeout.connect(self._refresh_bar)

    def dataset_opened(self, _root: str = "") -> None:
        """A dataset is on screen: the action works, and its jobs to come back to are looked for."""
        self.action.setEnabled(True)
        self.scan_jobs()

    def scopes_changed(self) -> None:
        """The grid's selection or filter changed: the open dialog's counts follow (debounced)."""
        if self.dialog is not None:
            self._scope_timer.start()

    def open_dialog(self) -> AutoCaptionDialog | None:
        """Open the dialog for the dataset on screen (non-modal), or raise the open one."""
        session = self._session()
        if session is None:
            self._show_message("Open a dataset first, then auto-caption its images.", 5000)
            return None
        old = self.dialog
        if old is not None and not old.closing and old.dataset != session.root and not old.running:
            old.reject()  # it was for a dataset that is no longer on screen
        if self.dialog is not None and not self.dialog.closing:
            self._update_scopes()
            self.dialog.show()
            self.dialog.raise_()
            self._update_bar()
            return self.dialog
        self._flush_edits()
        workspace = self._workspace()
        dialog = AutoCaptionDialog(
            dataset=session.root, scopes=self._scopes(session), captions=lambda: self._captions(session),
            apply=lambda changes, name: self._apply(session, changes, name),
            captioners=find_captioners(workspace, session.root), workspace=job_workspace(workspace, session.root),
            places=places(app_context), runner=self.runner, flush_edits=self._flush_edits, parent=self._parent,
            poll_ms=self.poll_ms)
        session.captionsChanged.connect(dialog.grid_changed)
        dialog.applied.connect(lambda count, name: self._show_message(
            f"{name}: {count:,} caption{'s' if count != 1 else ''} changed (Undo takes it back)", 8000))
        dialog.finished.connect(lambda _result: self._forget(dialog, session))
        dialog.jobChanged.connect(self._dialog_job_changed)
        self.dialog = dialog
        self._dialogs.append(dialog)
        dialog.show()
        self._update_bar()
        return dialog

    # -- jobs to come back to ---------------------------------------------------------------
    def scan_jobs(self) -> None:
        """Look for the open dataset's running or unapplied jobs (in a worker; the bar shows the newest)."""
        session = self._session()
        if session is None:
            self.bar.set_job(None)
            return
        self._scan_serial += 1
        serial, root = self._scan_serial, session.root
        workspace = job_workspace(self._workspace(), root)
        self.runner.start(find_pending_jobs, workspace, Path(root),
                                 on_done=lambda jobs: self._jobs_found(serial, root, jobs),
                                 on_error=lambda _message: None)  # an unreadable runs folder: no bar

    def _jobs_found(self, serial: int, root: Path, jobs: list[PendingJob]) -> None:
        session = self._session()
        if serial != self._scan_serial or session is None or session.root != root:
            return  # another dataset (or a newer scan) meanwhile
        followed = self.dialog.job.run_dir if self.dialog is not None and self.dialog.job is not None else None
        jobs = [job for job in jobs if job.run_dir != followed]
        if self.dialog is not None and self.dialog.isVisible():
            self.bar.set_job(None)
            self._found = jobs
            return
        self._found = jobs
        self._update_bar()

    def _update_bar(self) -> None:
        """The bar follows the dialog: hidden while it is open, its job while it is hidden."""
        dialog = self.dialog
        if dialog is not None and dialog.isVisible():
            self.bar.set_job(None)
            return
        own = dialog.pending_job() if dialog is not None and not dialog.closing else None
        if own is not None:
            self.bar.set_job(own)
            if own.running and not self._bar_timer.isActive():
                self._bar_timer.start()
            return
        self.bar.set_job(next(iter(self._found), None))
        if self.bar.job is not None and self.bar.job.running:
            if not self._bar_timer.isActive():
                self._bar_timer.start()
        else:
            self._bar_timer.stop()

    def _refresh_bar(self) -> None:
        job = self.bar.job
        if job is None or not job.running or not self.bar.isVisible():
            self._bar_timer.stop()
            return
        dialog = self.dialog
        if dialog is not None and dialog.job is not None and dialog.job.run_dir == job.run_dir:
            self._update_bar()  # the hidden dialog follows it already
            return
        session = self._session()
        if session is not None:
            self.runner.start(pending_job, job.run_dir, Path(session.root), on_done=self._job_refreshed,
                              on_error=lambda _message: None)

    def _job_refreshed(self, fresh: PendingJob | None) -> None:
        shown = self.bar.job
        if shown is None:
            return
        self._found = [fresh if found.run_dir == shown.run_dir else found for found in self._found]
        self._found = [found for found in self._found if found is not None]
        self._update_bar()

    def _dialog_job_changed(self) -> None:
        dialog = self.dialog
        if dialog is not None and not dialog.isVisible() and dialog.running:
            target = dialog.target_name or "the target"
            self._show_message(
                f"The auto-caption job keeps running on {target}; the bar above the grid brings it back.", 8000)
        self._update_bar()

    def show_job(self, job: PendingJob) -> AutoCaptionDialog | None:
        """Open the dialog on ``job`` (a job found in its run folder, or the hidden dialog's own)."""
        dialog = self.dialog
        if dialog is not None and dialog.job is not None and dialog.job.run_dir == job.run_dir:
            return self.open_dialog()  # it is the hidden dialog's own job
        if dialog is not None and dialog.running:
            self._show_message("Another auto-caption job is shown; close it first.", 6000)
            return self.open_dialog()
        if dialog is not None:
            dialog.reject()
        dialog = self.open_dialog()
        if dialog is None:
            return None
        self._found = [found for found in self._found if found.run_dir != job.run_dir]
        dialog.attach(job, RunFolderJob(job.run_dir, self.runner, job_context(app_context), dialog))
        return dialog

    def _discard(self, job: PendingJob) -> None:
        try:
            mark_handled(job.run_dir, "discarded")
        except OSError as exc:
            self._show_message(f"Cannot write to {job.run_dir}: {exc}", 8000)
        self._found = [found for found in self._found if found.run_dir != job.run_dir]
        self._update_bar()

    def _scopes(self, session: DatasetSession) -> dict[str, list[str]]:
        rel_of = [entry.rel for entry in session.entries]
        scopes = ("selected", "filtered", "all")
        return {scope: [rel_of[row] for row in self._scope_rows(scope)] for scope in scopes}

    def _update_scopes(self) -> None:
        session = self._session()
        if self.dialog is not None and session is not None and self.dialog.dataset == session.root:
            self.dialog.set_scopes(self._scopes(session))

    def _captions(self, session: DatasetSession) -> dict[str, str] | None:
        """The session's captions now; None once another dataset replaced it."""
        if self._session() is not session:
            return None
        return dict(zip(session.rels(), session.captions))

    def _apply(self, session: DatasetSession, changes: dict[str, str], name: str) -> int:
        if self._session() is not session:
            return 0
        return session.set_captions(changes, name)

    def _forget(self, dialog: AutoCaptionDialog, session: DatasetSession) -> None:
        if self._session() is session:
            try:
                session.captionsChanged.disconnect(dialog.grid_changed)
            except (RuntimeError, TypeError):
                pass  # already gone with the session
        if self.dialog is dialog:
            self.dialog = None
        if dialog in self._dialogs:
            self._dialogs.remove(dialog)
        dialog.deleteLater()
        self._update_bar()

    def shutdown(self) -> None:
        """The window closes: running jobs are let go; they run on, and their dataset's bar offers them next time."""
        for dialog in list(self._dialogs):  # a closing one may still run
            dialog.shutdown()
        self._dialogs.clear()  # let go: a second close of the window finds nothing to do
        self.dialog = None
        self._bar_timer.stop()
