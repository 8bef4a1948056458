"""The "Auto-caption" dialog: settings, a running job's progress, a preview, apply as one undo step.

The dialog gets plain data and callables from its owner (see :mod:`.hook`): the images of
each scope, a function that returns the grid's captions *now*, and one that applies changes
as a named undo step. It never touches the caption model or the session itself.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QDialog, QWidget

from trainer.wording import plural

from ..jobs.follow import RunFolderJob
from ..jobs.places import Place
from ..workers.tasks import TaskRunner
from .captioners import CaptionerChoice
from .dialog_layout import build_dialog
from .dialog_text import ACTIVE_PHASES, errors_html, progress_text, row_detail_html
from .job import FORCE_AFTER_MS, JobEnd, LabelJob
from .plan import ApplyPlan, plan_changes, undo_name
from .reattach import PendingJob, mark_handled
from .request import new_run_dir
from .settings_panel import SettingsPanel

class AutoCaptionDialog(QDialog):
    """Non-modal; the job runs as a process of its own, so the grid stays usable meanwhile."""

    applied = Signal(int, str)  # captions changed, the undo step's name
    jobChanged = Signal()  # a job started, ended, or went on running with the dialog hidden

    def __init__(self, *, dataset: Path, scopes: dict[str, list[str]],
                 captions: Callable[[], dict[str, str] | None], apply: Callable[[dict[str, str], str], int],
                 captioners: list[CaptionerChoice], workspace: Path, places: list[Place],
                 runner: TaskRunner | None = None, flush_edits: Callable[[], None] = lambda: None,
                 parent: QWidget | None = None, poll_ms: int = 300) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Auto-caption — {dataset.name}")
        self.dataset, self.captions_fn, self.apply_fn = dataset, captions, apply
        self.workspace, self.flush_edits, self.poll_ms = workspace, flush_edits, poll_ms
        self.runner = runner  # starts jobs (and their checks) in workers; None: the dialog only shows jobs
        self.job: LabelJob | None = None
        self.target_name = ""  # where the job runs ("" for this computer)
        self.plan = ApplyPlan()
        self._closing = False
        self.settings = SettingsPanel(scopes, captioners, workspace, places, self)
        build_dialog(self)
        self.settings.changed.connect(self._update_summary)
        self._update_summary()
        self.resize(1040, 640)

    # -- state --------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Whether its job is running."""
        return self.job is not None and self.job.running

    @property
    def closing(self) -> bool:
        """Closed while its job was running: it goes away when the job has stopped."""
        return self._closing

    def set_scopes(self, scopes: dict[str, list[str]]) -> None:
        """New selected / filtered / all images (the grid changed); ignored while a job runs."""
        if not self.running:
            self.settings.set_scopes(scopes)

    def grid_changed(self, *_changed_rows: object) -> None:
        """Captions changed in the grid: recount what "fill" would caption, redo the preview."""
        self._update_summary()
        self.refresh_preview()

    def images_to_caption(self) -> list[str]:
        """The scope's images; with "fill", only those without a caption in the grid now."""
        rels = self.settings.scopes.get(self.settings.scope(), [])
        if self.settings.mode() != "fill":
            return list(rels)
        captions = self.captions_fn() or {}
        return [rel for rel in rels if not captions.get(rel, "").strip()]

    def problem(self) -> str | None:
        """Why the job cannot start, or None."""
        if self.captions_fn() is None:
            return "The dataset was closed; open it again to auto-caption it."
        choice = self.settings.captioner()
        if choice is None:
            return "No captioning model in the workspace."
        if not choice.usable:
            return f"The model {choice.name} cannot be used (see above)."
        if "," in self.settings.trigger.text():
            return "A trigger word cannot contain a comma."
        if not self.settings.scopes.get(self.settings.scope()):
            return "No images in this scope."
        if not self.images_to_caption():
            return "Nothing to caption: every image of this scope has a caption (fill never overwrites)."
        return None

    def _update_summary(self) -> None:
        if self.running:
            return
        problem = self.problem()
        self.start_button.setEnabled(problem is None)
        if problem:
            self.summary.setText(problem)
            return
        todo, total = len(self.images_to_caption()), len(self.settings.scopes.get(self.settings.scope(), []))
        text = f"Will caption {plural(todo, 'image')}"
        if todo != total:
            text += f" of {total:,} (the others have a caption and are kept)"
        self.summary.setText(text + ".")

    # -- the job ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the job on the chosen place (detached, in a worker; this returns at once)."""
        if self.running:
            return
        self.flush_edits()  # a caption being typed counts: "fill" must not caption that image
        place = self.settings.place()
        if self.problem() is not None or place is None or self.runner is None:
            self._update_summary()
            return
        request = self.settings.request(self.dataset, self.images_to_caption())
        try:
            run_dir = new_run_dir(self.workspace)
        except OSError as exc:
            self._show_errors("Cannot create the job's run folder:", [str(exc)])
            return
        self.target_name = place.target_name
        self._follow(LabelJob(request, run_dir, self, self.poll_ms))
        where = f" on {self.target_name}" if self.target_name else ""
        self.headline.setText(f"Captioning {plural(len(request.images), 'image')}{where}…")
        self.state_label.setText(f"Starting{where}… (run folder {run_dir})")
        try:
            self.job.start(place, self.runner)
        except OSError as exc:
            self.job = None
            self._set_running(False)
            self._show_errors("Cannot start the job:", [str(exc)])
        self.jobChanged.emit()

    def _follow(self, job: LabelJob) -> None:
        self.plan = ApplyPlan()
        self.preview_model.set_rows([])
        self.counts.setText("")
        self.errors.hide()
        self.job = job
        job.statusChanged.connect(self._on_status)
        job.resultsAdded.connect(lambda _records: self.refresh_preview())
        job.finished.connect(self._on_finished)
        self._set_running(True)
        self.progress.setRange(0, 0)
        self.progress.show()

    def attach(self, pending: PendingJob, process: RunFolderJob) -> None:
        """Follow a job found again in its run folder (started before the app restarted)."""
        self.settings.show_request(pending.request, pending.target)
        self.target_name = pending.target
        where = f" on {pending.target}" if pending.target else ""
        self._follow(LabelJob(pending.request, pending.run_dir, self, self.poll_ms))
        self.headline.setText(f"Captioning {plural(len(pending.request.images), 'image')}{where}…"
                              if pending.running else "Reading the job's results…")
        self.state_label.setText(f"Run folder {pending.run_dir}")
        assert self.job is not None
        self.job.attach(process, on_share=bool(pending.target))
        self.jobChanged.emit()

    def pending_job(self) -> PendingJob | None:
        """Its job as the re-attach bar shows it (None when there is none, or nothing is left to do)."""
        job = self.job
        if job is None:
            return None
        if job.end is not None and not (job.end.has_results and self.plan.changes):
            return None
        status = job.status
        state = "running" if job.end is None else "finished"
        return PendingJob(job.run_dir, job.request, self.target_name, state, int(status.get("step") or 0),
                          int(status.get("total_steps") or len(job.request.images)), len(self.plan.changes), 0.0)

    def _set_running(self, running: bool) -> None:
        self.settings.set_locked(running)
        self.start_button.setEnabled(not running and self.problem() is None)
        self.start_button.setText("Start again" if self.job is not None and not running else "Start")
        self.stop_button.setEnabled(running)
        self.stop_button.setText("Stop")
        self.apply_button.setEnabled(False)

    def stop(self) -> None:
        """Stop after the current batch (what is done can still be applied); later: end it now."""
        if self.job is None or not self.job.running:
            return
        if self.job.stop_requested:
            self.job.kill()
            return
        self.job.stop()
        self.stop_button.setText("Stopping…")
        self.stop_button.setEnabled(False)
        self.state_label.setText("Stopping after the current batch…")
        job = self.job

        def offer_force() -> None:
            if self.job is job and job.running:
                self.stop_button.setText("End now")
                self.stop_button.setEnabled(True)

        QTimer.singleShot(FORCE_AFTER_MS, self, offer_force)

    def _on_status(self, status: dict[str, Any]) -> None:
        state = status.get("state", "")
        total, step = int(status.get("total_steps") or 0), int(status.get("step") or 0)
        if state in ACTIVE_PHASES:
            self.progress.setRange(0, 0)
            self.state_label.setText(ACTIVE_PHASES[state])
            return
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(step)
        if state in ("training", "saving") and not (self.job and self.job.stop_requested):
            self.state_label.setText(progress_text(status))

    def _on_finished(self, end: JobEnd) -> None:
        if self._closing:  # closed by the user while it stopped: its results are not offered again
            self._discard_results()
            super().reject()
            return
        self._set_running(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if end.state == "completed" else 0)
        job = self.job
        if end.has_results:
            done = int((job.status if job else {}).get("step") or 0)
            self.headline.setText(f"{end.message} Review the captions, then apply them.")
            where = f" on {self.target_name}" if self.target_name else ""
            self.state_label.setText(f"{plural(done, 'image')} captioned{where}; nothing is written until you "
                                     "apply (then Undo takes it back).")
        else:
            self.settings.recheck_models()  # a model folder may have changed since the dialog opened
            self.headline.setText("Nothing was captioned." if end.state == "invalid" else "The job did not finish.")
            self.progress.hide()  # an empty bar says nothing; the errors below do
            self.state_label.setText(f"Run folder: {job.run_dir if job else ''}")
            self._show_errors(end.message, end.problems)
        self.refresh_preview()
        if self.preview_model.rows and not self.table.currentIndex().isValid():
            self.table.setCurrentIndex(self.preview_model.index(0, 0))
        self._update_summary()
        self.jobChanged.emit()

    def _show_errors(self, title: str, lines: list[str]) -> None:
        self.errors.setText(errors_html(title, lines))
        self.errors.show()

    # -- preview ------------------------------------------------------------------------------
    def refresh_preview(self, *_changed_rows: object) -> None:
        """Recompute the preview against the grid's captions now (they may have been edited)."""
        if self.job is None:
            return
        captions = self.captions_fn()
        if captions is None:
            self.counts.setText("The dataset was closed; open it again to apply results.")
            self.apply_button.setEnabled(False)
            return
        request = self.job.request
        self.plan = plan_changes(self.job.records, captions, request.mode, request.trigger)
        self.preview_model.set_rows(self.plan.rows)
        self._show_row_detail()
        finished = self.job.end is not None and self.job.end.has_results
        if self.plan.rows:
            self.counts.setText(("" if finished else "So far: ") + self.plan.summary() + ".")
        else:
            self.counts.setText("No results." if finished else "")
        count = len(self.plan.changes)
        ready = finished and count > 0
        self.apply_button.setEnabled(ready)
        self.apply_button.setDefault(ready)  # Enter applies once there is something to apply
        self.start_button.setDefault(not ready)
        self.apply_button.setText(f"Apply to {plural(count, 'image')}" if count else "Apply")

    def _show_row_detail(self) -> None:
        index = self.table.currentIndex()
        if not index.isValid() or index.row() >= len(self.preview_model.rows):
            self.row_detail.setText("")
            return
        self.row_detail.setText(row_detail_html(self.preview_model.rows[index.row()]))

    # -- apply and close --------------------------------------------------------------------------
    def apply(self) -> None:
        """Apply the results as one undo step, against the captions as they are now."""
        if self.job is None or self.job.end is None or not self.job.end.has_results:
            return
        self.flush_edits()  # a caption being typed counts as written by hand
        self.refresh_preview()
        changes = {rel: after for rel, (_now, after) in self.plan.changes.items()}
        if not changes:
            return
        name = undo_name(len(changes))
        count = self.apply_fn(changes, name)
        self._mark(self.job.run_dir, "applied", count)
        self.applied.emit(count, name)
        self.accept()

    @staticmethod
    def _mark(run_dir: Path, action: str, count: int = 0) -> None:
        try:
            mark_handled(run_dir, action, count)
        except OSError:
            pass  # the share went away: the job may be offered again, which is harmless

    def _discard_results(self) -> None:
        """The user closed the dialog: the job's results are not offered again."""
        if self.job is not None and self.job.end is not None:
            self._mark(self.job.run_dir, "discarded")

    def reject(self) -> None:
        """Close. A job on a target keeps running (the bar above the grid shows it); a job of
        this computer is stopped first (nothing was written, so nothing is lost)."""
        if self.running and self.job is not None:
            if self.target_name:  # on a saved target (a GPU VM, most often): it goes on there
                self.hide()
                self.jobChanged.emit()
                return
            self._closing = True
            self.job.stop()
            self.hide()
            return
        self._discard_results()
        super().reject()

    def shutdown(self) -> None:
        """The app is closing: the job runs on, detached (on this computer too); opening its
        dataset again offers it (running, or its results to apply)."""
        if self.running and self.job is not None:
            self.job.release()
