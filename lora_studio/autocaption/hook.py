"""The main window's "Auto-caption…" action and the glue between the dialog and the session.

Kept out of ``main_window.py`` so that the window only creates the controller: the
controller adds its action to the Edit menu and the toolbar, opens the dialog for the
dataset on screen, applies the results to *that* dataset's session as one undo step, and
puts a bar above the grid when the dataset has a job to come back to (still running on a
target, or ended with results not applied, e.g. after the app was closed).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtGui import QAction, QKeySequence

from ..resources import icon
from .captioners import find_captioners, job_workspace
from .dialog import AutoCaptionDialog
from .reattach import PendingJob, find_pending_jobs, mark_handled, pending_job
from .reattach_bar import JobBar
from .target_launcher import attach_process, available_launchers

BAR_REFRESH_MS = 3000

if TYPE_CHECKING:
    from ..editing.session import DatasetSession
    from ..widgets.main_window import MainWindow


class AutoCaptionController(QObject):
    """Owns the action and the open dialog (one at a time)."""

    def __init__(self, window: "MainWindow", poll_ms: int = 300) -> None:
        super().__init__(window)
        self.window = window
        self.poll_ms = poll_ms
        self.dialog: AutoCaptionDialog | None = None
        self.action = QAction("Auto-&caption…", window)
        self.action.setIcon(icon("autocaption"))
        self.action.setProperty("iconName", "autocaption")  # re-tinted with the theme
        self.action.setShortcut(QKeySequence("Ctrl+Shift+L"))
        self.action.setToolTip("Caption images with a captioning model (Ctrl+Shift+L)")
        self.action.setStatusTip("Caption images with a local captioning model; preview, then apply with undo")
        self.action.triggered.connect(self.open_dialog)
        self.action.setEnabled(window.session is not None)
        window.datasetOpened.connect(lambda _root: self.action.setEnabled(True))
        self._insert_after(window.actions.find_replace)
        window.installEventFilter(self)  # to end a running job when the window closes
        # The dialog is not modal: its scope counts follow the grid's selection and filter.
        self._scope_timer = QTimer(self, singleShot=True, interval=150)
        self._scope_timer.timeout.connect(self._update_scopes)
        grid = window.grid
        for signal in (grid.selection_model().selectionChanged, grid.proxy.layoutChanged, grid.proxy.modelReset,
                       grid.proxy.rowsInserted, grid.proxy.rowsRemoved):
            signal.connect(lambda *_: self.dialog is not None and self._scope_timer.start())
        # The bar goes between the filter bar and the grid (the window's layout stays its own).
        self.bar = JobBar(window.grid_page)
        page_layout = window.grid_page.layout()
        page_layout.insertWidget(max(0, page_layout.indexOf(window.grid)), self.bar)
        self.bar.showRequested.connect(self.show_job)
        self.bar.discardRequested.connect(self._discard)
        self._scan_serial = 0
        self._found: list[PendingJob] = []  # the open dataset's jobs from the last scan
        window.datasetOpened.connect(lambda root: self.scan_jobs())
        # A running job's line in the bar follows its progress (a small read every few seconds).
        self._bar_timer = QTimer(self, interval=BAR_REFRESH_MS)
        self._bar_timer.timeout.connect(self._refresh_bar)

    def _insert_after(self, anchor: QAction) -> None:
        """Put the action after ``anchor`` in the Edit menu and the toolbar."""
        for container in [a.menu() for a in self.window.menuBar().actions()
                          if a.menu() is not None and anchor in a.menu().actions()] + [self.window.toolbar]:
            actions = container.actions()
            if anchor not in actions:
                continue
            position = actions.index(anchor) + 1
            if position < len(actions):
                container.insertAction(actions[position], self.action)
            else:
                container.addAction(self.action)

    def open_dialog(self) -> AutoCaptionDialog | None:
        """Open the dialog for the dataset on screen (non-modal), or raise the open one."""
        window, session = self.window, self.window.session
        if session is None:
            window.statusBar().showMessage("Open a dataset first, then auto-caption its images.", 5000)
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
        window.detail.commit()
        dialog = AutoCaptionDialog(
            dataset=session.root, scopes=self._scopes(session), captions=lambda: self._captions(session),
            apply=lambda changes, name: self._apply(session, changes, name),
            captioners=find_captioners(window.workspace, session.root),
            workspace=job_workspace(window.workspace, session.root),
            launchers=available_launchers(window.runner), flush_edits=self._flush_edits, parent=window,
            poll_ms=self.poll_ms)
        session.captionsChanged.connect(dialog.grid_changed)
        dialog.applied.connect(lambda count, name: window.statusBar().showMessage(
            f"{name}: {count:,} caption{'s' if count != 1 else ''} changed (Undo takes it back)", 8000))
        dialog.finished.connect(lambda _result: self._forget(dialog, session))
        dialog.jobChanged.connect(self._dialog_job_changed)
        self.dialog = dialog
        dialog.show()
        self._update_bar()
        return dialog

    # -- jobs to come back to ---------------------------------------------------------------
    def scan_jobs(self) -> None:
        """Look for the open dataset's running or unapplied jobs (in a worker; the bar shows the newest)."""
        session = self.window.session
        if session is None:
            self.bar.set_job(None)
            return
        self._scan_serial += 1
        serial, root = self._scan_serial, session.root
        workspace = job_workspace(self.window.workspace, root)
        self.window.runner.start(find_pending_jobs, workspace, Path(root),
                                 on_done=lambda jobs: self._jobs_found(serial, root, jobs),
                                 on_error=lambda _message: None)  # an unreadable runs folder: no bar

    def _jobs_found(self, serial: int, root: Path, jobs: list[PendingJob]) -> None:
        session = self.window.session
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
        session = self.window.session
        if session is not None:
            self.window.runner.start(pending_job, job.run_dir, Path(session.root), on_done=self._job_refreshed,
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
            self.window.statusBar().showMessage(
                f"The auto-caption job keeps running on {target}; the bar above the grid brings it back.", 8000)
        self._update_bar()

    def show_job(self, job: PendingJob) -> AutoCaptionDialog | None:
        """Open the dialog on ``job`` (a job found in its run folder, or the hidden dialog's own)."""
        dialog = self.dialog
        if dialog is not None and dialog.job is not None and dialog.job.run_dir == job.run_dir:
            return self.open_dialog()  # it is the hidden dialog's own job
        if dialog is not None and dialog.running:
            self.window.statusBar().showMessage("Another auto-caption job is shown; close it first.", 6000)
            return self.open_dialog()
        if dialog is not None:
            dialog.reject()
        dialog = self.open_dialog()
        if dialog is None:
            return None
        self._found = [found for found in self._found if found.run_dir != job.run_dir]
        dialog.attach(job, attach_process(job.run_dir, self.window.runner, dialog))
        return dialog

    def _discard(self, job: PendingJob) -> None:
        try:
            mark_handled(job.run_dir, "discarded")
        except OSError as exc:
            self.window.statusBar().showMessage(f"Cannot write to {job.run_dir}: {exc}", 8000)
        self._found = [found for found in self._found if found.run_dir != job.run_dir]
        self._update_bar()

    def _scopes(self, session: "DatasetSession") -> dict[str, list[str]]:
        rel_of = [entry.rel for entry in session.entries]
        scopes = ("selected", "filtered", "all")
        return {scope: [rel_of[row] for row in self.window.scope_rows(scope)] for scope in scopes}

    def _update_scopes(self) -> None:
        session = self.window.session
        if self.dialog is not None and session is not None and self.dialog.dataset == session.root:
            self.dialog.set_scopes(self._scopes(session))

    def _captions(self, session: "DatasetSession") -> dict[str, str] | None:
        """The session's captions now; None once another dataset replaced it."""
        if self.window.session is not session:
            return None
        return dict(zip(session.rels(), session.captions))

    def _apply(self, session: "DatasetSession", changes: dict[str, str], name: str) -> int:
        if self.window.session is not session:
            return 0
        return session.set_captions(changes, name)

    def _flush_edits(self) -> None:
        self.window.grid.finish_editing()
        self.window.detail.commit()

    def _forget(self, dialog: AutoCaptionDialog, session: "DatasetSession") -> None:
        if self.window.session is session:
            try:
                session.captionsChanged.disconnect(dialog.grid_changed)
            except (RuntimeError, TypeError):
                pass  # already gone with the session
        if self.dialog is dialog:
            self.dialog = None
        dialog.deleteLater()
        self._update_bar()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's API
        """When the window closes, a running job ends with it (it only proposed captions)."""
        if watched is self.window and event.type() == QEvent.Type.Close:
            for dialog in self.window.findChildren(AutoCaptionDialog):  # a closing one may still run
                dialog.shutdown()
        return False
