"""The Runs page: every run of the workspace, and the selected one live: progress, loss curves,
log, samples, files and checkpoints, with Stop, Resume, Train again, TensorBoard and automatic recovery.

Everything is read from the run folders (DESIGN.md section 3), so the page works for runs
started anywhere, by anyone, and needs no connection to watch. Disk scans run in workers;
the per-second refresh reads only new bytes.
"""

from __future__ import annotations

import html
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox, QWidget

from trainer.rundir import CONFIG_FILE, EVENTS_FILE, METRICS_FILE, JsonlTail, read_status
from trainer.wording import plural

from ..targets.ray_state import combine as combine_ray, list_runs_seen
from ..targets.runs import RunSummary, summarize_run
from ..targets_ui.store import app_context
from ..workers.tasks import TaskRunner
from ..workers.thumbnails import ThumbnailLoader
from ..targets.placement import placement_of
from .event_fields import event_int
from .monitor_layout import (AUTO_RECOVER_QUEUED_TEXT, AUTO_RECOVER_TEXT, LOOKING_FOR_RUNS, NO_RUNS, REQUEUE_TIP,
                             RESUME_TIP, build_monitor_page)
from .queued_runs import QUEUED_KIND, with_queue
from .recovery import load_settings as load_recovery, recover, resume_from_checkpoint
from .recovery import save_settings as save_recovery
from .recovery_watch import RecoveryWatch
from .placement_view import node_logs
from .run_details import details_text, error_text
from .runs_model import RUN_ROLE, STATE_COLORS, RunsModel

REFRESH_MS = 1000
RUNS_REFRESH_MS = 3000


class MonitorPage(QWidget):
    """Runs list on the left, the selected run on the right."""

    runSelected = Signal(str)
    cancelQueued = Signal(str)   # Cancel… on a queued run: the window asks, then takes it out of the queue
    requeueQueued = Signal(str)  # Queue again on a run whose start from the queue failed
    trainAgain = Signal(str)     # Train again…: the run folder whose settings a new config starts from

    def __init__(self, runner: TaskRunner, thumbnails: ThumbnailLoader, parent: QWidget | None = None,
                 context=app_context, refresh_ms: int = REFRESH_MS, runs_refresh_ms: int = RUNS_REFRESH_MS) -> None:
        super().__init__(parent)
        self.setObjectName("MonitorPage")
        self.runner = runner
        self.context = context
        self.workspace: Path | None = None
        self.run_dir: Path | None = None
        self.events_tail: JsonlTail | None = None
        self._listing = False
        self._recovering: set[str] = set()
        self.pending_selection: str | None = None  # a run just launched: select it when it appears
        self._folder_runs: list[RunSummary] = []  # the run folders, as the last scan found them
        self._queue_rows: list = []                # the queue, as the fleet dispatcher last read it (QueueRow)
        self.recovery = RecoveryWatch(runner, lambda: self.context(), self)
        # A run started again shows at once; one that waits for a target must not make the list spin.
        self.recovery.passed.connect(lambda outcomes: any(o.kind == "started" for o in outcomes) and self.refresh_runs())

        self.model = RunsModel(self)
        build_monitor_page(self, thumbnails)
        self._set_controls(None)

        self.timer = QTimer(self)
        self.timer.setInterval(refresh_ms)
        self.timer.timeout.connect(self.refresh)
        self.runs_timer = QTimer(self)
        self.runs_timer.setInterval(runs_refresh_ms)
        self.runs_timer.timeout.connect(self.refresh_runs)

    # -- workspace and selection -------------------------------------------------------
    def set_workspace(self, workspace: Path | None) -> None:
        """Watch the runs of ``workspace`` (None stops watching)."""
        self.workspace = workspace
        self._folder_runs, self._queue_rows = [], []
        self.model.set_runs([])
        self.no_runs.setText(LOOKING_FOR_RUNS)
        self.runs_stack.setCurrentWidget(self.no_runs)
        self.show_run(None)
        if workspace is None:
            self.timer.stop()
            self.runs_timer.stop()
            return
        self.refresh_runs()
        self.timer.start()
        if self.runs_timer.interval() > 0:
            self.runs_timer.start()

    def refresh_runs(self) -> None:
        """Rescan the workspace's run folders in a worker (and recover lost runs when asked)."""
        if self.workspace is None or self._listing:
            return
        self._listing = True
        # list_runs_seen: the run folders, and Ray's word on the Ray runs (queued for a GPU, or ended).
        self.runner.start(list_runs_seen, self.workspace, on_done=self._runs_listed, on_error=self._runs_failed)

    def _runs_failed(self, message: str) -> None:
        self._listing = False
        self.details.setText(f"The run folders could not be read: {message}")
        self.no_runs.setText(f"<b>The run folders could not be read.</b><br>{html.escape(message)}")

    def show_queue(self, rows: list) -> None:
        """List the queued runs of ``rows`` (the fleet dispatcher's QueueRows) with the run folders."""
        self._queue_rows = list(rows)
        if self.workspace is not None:
            self._show_rows(self._folder_runs)
            if self.run_dir is not None:
                self.refresh()  # a queued run shown: its place and what it waits for, now

    def _runs_listed(self, runs: list[RunSummary]) -> None:
        self._listing = False
        self._folder_runs = runs
        self.no_runs.setText(NO_RUNS)
        self._show_rows(runs)
        # Lost runs with automatic recovery on start again, here or on another target (in a worker).
        self.recovery.check(self.workspace, [r for r in runs if str(r.path) not in self._recovering])

    def _show_rows(self, folder_runs: list[RunSummary]) -> None:
        runs = with_queue(folder_runs, self._queue_rows)
        selected = {str(p) for p in self.selected_runs()}
        self.model.set_runs(runs)
        self.runs_stack.setCurrentWidget(self.table if runs else self.no_runs)
        if self.pending_selection and any(str(r.path) == self.pending_selection for r in runs):
            self.table.clearSelection()
            self._select_path(self.pending_selection)
            self.pending_selection = None
        elif selected:
            self._reselect(selected)
        elif runs and self.run_dir is None:
            self.table.selectRow(0)

    def _reselect(self, paths: set[str]) -> None:
        """Select the same runs again after the list was rebuilt (without reloading them)."""
        selection = self.table.selectionModel()
        selection.blockSignals(True)
        selection.clearSelection()
        for row in range(self.proxy.rowCount()):
            index = self.proxy.index(row, 0)
            if index.data(RUN_ROLE) in paths:
                selection.select(index, selection.SelectionFlag.Select | selection.SelectionFlag.Rows)
        selection.blockSignals(False)

    def _select_path(self, path: str) -> None:
        for row in range(self.proxy.rowCount()):
            if self.proxy.index(row, 0).data(RUN_ROLE) == path:
                self.table.selectRow(row)
                return

    def selected_runs(self) -> list[Path]:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [Path(self.proxy.index(row, 0).data(RUN_ROLE)) for row in rows]

    def _selection_changed(self) -> None:
        runs = self.selected_runs()
        self.trash_button.setEnabled(bool(runs))
        self.show_run(runs[0] if runs else None, overlay=runs[1:] if self.overlay.isChecked() else [])

    def show_run(self, run_dir: Path | None, overlay: list[Path] | None = None) -> None:
        """Show ``run_dir`` (and overlay the curves of ``overlay``)."""
        for name in self.plot.runs():
            self.plot.remove_run(name)
        self.run_dir = run_dir
        self.events_tail = JsonlTail(run_dir / EVENTS_FILE) if run_dir else None
        self.samples.set_run(run_dir)
        self.files.show_run(run_dir)
        self.log_view.follow_run(run_dir)
        if run_dir is not None:
            for folder in [run_dir, *(overlay or [])]:
                # The history of a long run (a million lines) is read off the UI thread.
                series = self.plot.add_run(folder.name, folder / METRICS_FILE, loading=True)
                self.runner.start(series.refresh, on_done=lambda _n, name=folder.name: self.plot.loaded(name),
                                  on_error=lambda _m, name=folder.name: self.plot.loaded(name))
            self.auto_recover.blockSignals(True)
            self.auto_recover.setChecked(load_recovery(run_dir).enabled)
            self.auto_recover.blockSignals(False)
            self.runSelected.emit(str(run_dir))
        self.refresh()
        self.plot.reset_zoom()

    # -- the per-second refresh --------------------------------------------------------
    def refresh(self) -> None:
        """New points, log lines, events and status of the shown run(s)."""
        self.progress.setVisible(self.run_dir is not None)  # no run, no steps: an empty bar says nothing
        if self.run_dir is None:
            self._set_controls(None)
            self.placement.show_placement(None)
            return
        listed = next((r for r in self.model.runs if r.path == self.run_dir), None)
        if listed is not None and listed.kind == QUEUED_KIND:
            self._show_status(listed, {}, None)  # its folder holds no run yet: the queue's word is all there is
            return
        self.plot.refresh()
        self.log_view.refresh()
        new_events = self.events_tail.read_new() if self.events_tail else []
        if new_events:
            self.samples.add_samples(new_events)
            marks = [step for e in new_events if e.get("kind") in ("resume", "recovery")
                     and (step := event_int(e, "step")) is not None]
            if marks:
                known = self.plot.recovery_steps.get(self.run_dir.name, [])
                self.plot.set_recoveries(self.run_dir.name, known + marks)
            self.files.add_events(new_events)
        summary = summarize_run(self.run_dir)
        if listed is not None:
            summary = combine_ray(summary, listed.ray_job)  # as the list saw Ray last (no request here)
        if listed is not None and listed.state != summary.state:
            self.refresh_runs()  # the list is rescanned every few seconds; this run just changed
        if listed is not None:
            self.model.update_run(summary)
        series = self.plot.series.get(self.run_dir.name)
        if series is not None and len(series):
            self.model.set_last_loss(str(self.run_dir), float(series.ema[-1]))
        self._show_status(summary, read_status(self.run_dir) or {}, series)

    def _show_status(self, summary: RunSummary, status: dict, series) -> None:
        self.title.setText(f"<b>{summary.name}</b> &nbsp;<small>{self.run_dir}</small>")
        color = STATE_COLORS.get(summary.state, "#6b7280")
        # Plain text with a style sheet: a rich-text label measures its bold text too narrow.
        self.state.setText(summary.state.upper())
        self.state.setStyleSheet(f"color: {color}; font-weight: bold;")
        total = summary.total_steps or 0
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(min(summary.step, max(total, 1)))
        self.progress.setFormat(f"step {summary.step} of {total}" if total else _not_started(summary)
                                if summary.kind == QUEUED_KIND else f"step {summary.step}")
        placement = placement_of(summary.info)
        self.details.setText(details_text(summary, status, series, placement))
        self.placement.show_placement(placement)
        self.log_view.follow_run(self.run_dir, node_logs(placement))  # a run over several nodes: a log per node
        self.error.setText(error_text(summary))
        self.error.setVisible(bool(self.error.text()))
        self._set_controls(summary, status, series)

    def _set_controls(self, summary: RunSummary | None, status: dict | None = None, series=None) -> None:
        self.stop_bar.show_run(self.run_dir if summary else None, summary, status, series)
        resumable = summary is not None and summary.resumable
        # A start from the queue that failed has no checkpoint to resume: it goes back into the queue instead.
        requeue = summary is not None and summary.kind == QUEUED_KIND and summary.state == "failed"
        self.resume_button.setText("Queue again" if requeue else "Resume")
        self.resume_button.setToolTip(REQUEUE_TIP if requeue else RESUME_TIP)
        self.resume_button.setEnabled(resumable or requeue)
        self.resume_elsewhere.setEnabled(resumable)
        # A desk starting (or checking ahead) a queued run holds its claim: Cancel… and Queue again would be refused.
        held = next((r.status for r in self._queue_rows if summary is not None and summary.kind == QUEUED_KIND
                     and r.entry.run_dir == summary.path and r.entry.claim is not None), None)
        if held:
            for button in (self.stop_button, self.resume_button):
                button.setEnabled(False)
                button.setToolTip(f"It is {held}: wait a moment")
        for widget in (self.tensorboard_button, self.output_button, self.auto_recover):
            widget.setEnabled(summary is not None)
        queued = summary is not None and summary.kind == QUEUED_KIND
        self.train_again_button.setEnabled(not queued and self.run_dir is not None
                                           and (self.run_dir / CONFIG_FILE).is_file())
        self.auto_recover.setText(AUTO_RECOVER_QUEUED_TEXT if queued else AUTO_RECOVER_TEXT)

    # -- controls ----------------------------------------------------------------------
    def resume_selected(self, target_name: str | None, reason: str = "resumed by the user") -> None:
        """Start the selected run again (it continues from its newest complete checkpoint); a run whose start
        from the queue failed goes back into the queue."""
        listed = next((r for r in self.model.runs if r.path == self.run_dir), None)
        if listed is not None and listed.kind == QUEUED_KIND:
            self.requeueQueued.emit(str(self.run_dir))
        elif self.run_dir is not None:
            self._recover(self.run_dir, target_name, reason)

    def _resume_on_other_target(self) -> None:
        try:
            names = [t.name for t in self.context().settings.targets]
        except Exception as exc:  # noqa: BLE001 - shown to the user
            QMessageBox.warning(self, "Targets", f"The targets cannot be read: {exc}")
            return
        name, ok = QInputDialog.getItem(self, "Resume on another target", "Target:", names, 0, False)
        if ok:
            self.resume_selected(name, f"resumed on {name} by the user")

    def _resume_from_checkpoint(self, checkpoint: str) -> None:
        """Continue the shown run from ``checkpoint``, picked on the Files tab (not necessarily the newest)."""
        if self.run_dir is None:
            return
        run_dir = self.run_dir
        self._recovering.add(str(run_dir))
        self.runner.start(lambda: resume_from_checkpoint(run_dir, Path(checkpoint), self.context(), self.workspace),
                          on_done=lambda outcome: self._launched(outcome, run_dir),
                          on_error=lambda message: self._recover_failed(run_dir, message))

    def _recover(self, run_dir: Path, target_name: str | None, reason: str) -> None:
        self._recovering.add(str(run_dir))
        interactive = reason != "automatic recovery"
        self.runner.start(lambda: recover(run_dir, self.context(), self.workspace, target_name, reason),
                          on_done=lambda outcome: self._launched(outcome, run_dir, interactive),
                          on_error=lambda message: self._recover_failed(run_dir, message, interactive))

    def _launched(self, outcome, run_dir: Path, interactive: bool = True) -> None:
        self._recovering.discard(str(run_dir))
        if not outcome.started:
            problems = "; ".join(f"{c.message} ({c.hint})" for c in outcome.report.checks if c.status == "error")
            self._recover_failed(run_dir, problems, interactive)
        self.refresh_runs()

    def _recover_failed(self, run_dir: Path, message: str, interactive: bool = True) -> None:
        """Say why a run could not start again: a dialog when the user asked, else in the page
        and the run's events (automatic recovery must never block on a dialog)."""
        self._recovering.discard(str(run_dir))
        text = f"Could not start the run again: {message}"
        if interactive:
            QMessageBox.warning(self, "Not started", text)
        else:
            from .recovery import record_event
            record_event(run_dir, "warning", message=text)
        if self.run_dir == run_dir:
            self.error.setText(text)
            self.error.setVisible(True)

    def _auto_recover_toggled(self, on: bool) -> None:
        if self.run_dir is not None:
            save_recovery(self.run_dir, replace(load_recovery(self.run_dir), enabled=on))

    def open_folder(self) -> None:
        if self.run_dir is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.run_dir)))

    def delete_selected(self) -> None:
        """Move the selected run folders to the trash (after asking)."""
        runs = self.selected_runs()
        if not runs:
            return
        answer = QMessageBox.question(self, "Move to trash", f"Move {plural(len(runs), 'run folder')} to the trash?\n" +
                                      "\n".join(str(r) for r in runs))
        if answer != QMessageBox.StandardButton.Yes:
            return
        from ..storage.file_ops import move_to_trash
        for run in runs:
            move_to_trash(run)
        self.show_run(None)
        self.refresh_runs()

    def open_tensorboard(self) -> None:
        """Start `tensorboard --logdir <run>/tb` when it is installed, else say how."""
        if self.run_dir is None:
            return
        executable = shutil.which("tensorboard")
        if executable is None:
            QMessageBox.information(self, "TensorBoard", "TensorBoard is not installed here. Install it with "
                                    f"`pip install tensorboard`, then run:\n\ntensorboard --logdir \"{self.run_dir / 'tb'}\"")
            return
        subprocess.Popen([executable, "--logdir", str(self.run_dir / "tb"), "--port", "6006"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        QDesktopServices.openUrl(QUrl("http://localhost:6006"))

    def _export_png(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export plot", "loss.png", "PNG (*.png)")
        if path:
            self.plot.export_png(Path(path))

    def _export_csv(self) -> None:
        if self.run_dir is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export metrics", f"{self.run_dir.name}.csv", "CSV (*.csv)")
        if path:
            self.plot.export_csv(self.run_dir.name, Path(path))


def _not_started(summary: RunSummary) -> str:
    """The progress bar's words for a run in the queue (no step yet)."""
    return "not started: its start failed" if summary.state == "failed" else "not started: in the queue"
