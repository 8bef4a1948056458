"""The Fleet tab: this desk's targets with their GPUs and what runs there, and the queue in the order
its runs go out, each with what it waits for; move a queued run up, down or to the top, or cancel it.

Everything shown comes from the run folders on the share (the dispatcher's snapshots), so every
desk with the workspace open sees the same queue; only the targets are this desk's own.
"""

from __future__ import annotations

import time
from html import escape
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QMessageBox,
                               QSplitter, QStackedWidget, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from ..boxes import column, push_button
from ..fleet import FleetSnapshot, QueueRow, TargetLoad, cancel, move, requeue
from ..jobs.places import THIS_COMPUTER, place_label
from ..targets.model import LocalTarget
from ..targets.runs import RunSummary
from ..targets_ui.jobs import GpuAnswer, check_gpus
from ..targets_ui.store import gpu_notes_file
from ..targets_ui.tables import make_table
from .dispatcher import FleetDispatcher
from .queue_model import RUN_ROLE, QueueModel

HINT = ("Queued runs start by themselves, in this order, each on the first free target that fits it. Any LoRA Studio "
        "with this workspace open sends them (this one looks every {seconds} s); while none is open, they wait.")
EMPTY_QUEUE = ("<b>No runs are waiting.</b><br>When you press Start and every target the run may use is busy, "
               "the run waits here and starts by itself on the first free target that fits it.")
NO_WORKSPACE = "<b>No workspace is open.</b><br>Open one (File › Open Workspace) to see its targets and queue."


def detail_html(row: QueueRow) -> str:
    """The selected queued run in full: what it waits for target by target (or why its start failed), and whence."""
    entry = row.entry
    if entry.state == "failed":
        problems = (entry.error or {}).get("problems") or []
        head = f"<b>{escape(entry.name)}</b>: {escape(row.status)}"
        items = "".join(f"<li>{escape(p)}</li>" for p in problems[1:] if p)
        head += f"<ul>{items}</ul>" if items else "<br>"
        head += "Fix it, then <b>Queue again</b> (or start it again from the Train tab)."
    elif row.waits:
        items = "".join(f"<li>{escape(w.line())}</li>" for w in row.waits)
        head = f"<b>{escape(entry.name)}</b> waits for:<ul>{items}</ul>"
    else:
        head = f"<b>{escape(entry.name)}</b>: {escape(row.status)}<br>"
    if entry.needs.together:
        where = "runs on all of " + " + ".join(entry.needs.targets) + f" at once ({entry.needs.targets[0]} hosts the rendezvous)"
    else:
        where = "may run on " + (", ".join(entry.needs.targets) or "any target of the desk that sends it")
    source = f" from {escape(entry.source_config)}" if entry.source_config else ""
    return (f"{head}<span style='color: #6b7280;'>Needs {escape(entry.needs.describe())} · "
            f"{escape(where)} · queued{source} by {escape(entry.queued_by or 'an unknown desk')}</span>")


def _since(started: float | None) -> str:
    return time.strftime("%H:%M", time.localtime(started)) if started else ""


def _run_text(run: RunSummary) -> str:
    step = f" · step {run.step} of {run.total_steps}" if run.total_steps else ""
    return f"{run.state}{step}"


class FleetPage(QWidget):
    """Targets above, the queue below, the queue's buttons beside it."""

    def __init__(self, dispatcher: FleetDispatcher, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("FleetPage")
        self.dispatcher = dispatcher
        self.pending_selection: str | None = None  # a run just queued (or moved): selected when it shows up
        self._banner_run: tuple[str, float] | None = None  # the run the banner speaks of, and when it was queued

        self.banner = QLabel(self)
        self.banner.setObjectName("queuedBanner")
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("background: #eff6ff; color: #1e3a8a; border: 1px solid #bfdbfe; "
                                  "border-radius: 4px; padding: 6px 10px;")
        self.banner.hide()
        self.hint = QLabel(HINT.format(seconds=max(1, dispatcher.timer.interval() // 1000)), self)
        self.hint.setObjectName("hint")
        self.hint.setWordWrap(True)

        self.targets = QTreeWidget(self)
        self.targets.setObjectName("fleetTargets")
        self.targets.setHeaderLabels(["Target", "GPUs", "Runs", "Since"])
        self.targets.setRootIsDecorated(True)
        self.targets.setUniformRowHeights(True)
        self.targets.setAlternatingRowColors(True)
        self.targets.setStyleSheet("QTreeWidget::item { padding: 4px 2px; }")  # as roomy as the tables' rows
        self.targets.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        header = self.targets.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.check_button = push_button("Check GPUs", self, self.check_gpus, name="checkGpus",
                                        tip="Ask the targets whose GPUs are not known yet for them (all of them when "
                                            "every one is known), as Test / preflight on the Targets tab does")
        self.check_button.setEnabled(False)
        self._checking = False
        self._gpu_report = ""  # what the last Check GPUs found, under the footer's line
        self._untold: set[str] = set()  # the targets that last Check GPUs could not tell
        targets_box = QGroupBox("Targets on this desk", self)
        targets_layout = QHBoxLayout(targets_box)
        targets_layout.addWidget(self.targets, 1)
        check_column = QVBoxLayout()
        check_column.addWidget(self.check_button)
        check_column.addStretch(1)
        targets_layout.addLayout(check_column)

        self.model = QueueModel(self)
        self.table = make_table(self, self.model, "fleetQueue")
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        columns = self.table.horizontalHeader()
        columns.setStretchLastSection(False)
        columns.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        columns.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)  # what it waits for: the long one
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)
        self.empty = QLabel(EMPTY_QUEUE, self)
        self.empty.setObjectName("emptyQueue")
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setContentsMargins(40, 20, 40, 20)
        self.detail = QLabel(self)
        self.detail.setObjectName("queueDetail")
        self.detail.setWordWrap(True)
        self.detail.setTextFormat(Qt.TextFormat.RichText)
        self.detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.detail.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.detail.setContentsMargins(4, 6, 4, 2)
        self.queue_stack = QStackedWidget(self)
        self.queue_stack.addWidget(self.empty)
        self.queue_stack.addWidget(column(self, (self.table, 1), self.detail))

        self.top_button = push_button("Move to top", self, lambda: self._move("top"), name="moveTop",
                                      tip="Send this run out first when a target it can use frees up")
        self.up_button = push_button("Move up", self, lambda: self._move("up"), name="moveUp")
        self.down_button = push_button("Move down", self, lambda: self._move("down"), name="moveDown")
        self.requeue_button = push_button("Queue again", self, self._requeue, name="queueAgain",
                                          tip="Put a run whose start failed back at the end of the queue")
        self.cancel_button = push_button("Cancel…", self, self._cancel, name="cancelQueued",
                                         tip="Take the run out of the queue (its folder stays)")
        buttons = QVBoxLayout()
        for button in (self.top_button, self.up_button, self.down_button, self.requeue_button, self.cancel_button):
            buttons.addWidget(button)
        buttons.insertSpacing(3, 12)
        buttons.insertSpacing(5, 12)
        buttons.addStretch(1)
        queue_box = QGroupBox("Queue", self)
        queue_layout = QHBoxLayout(queue_box)
        queue_layout.addWidget(self.queue_stack, 1)
        queue_layout.addLayout(buttons)

        self.footer = QLabel(self)
        self.footer.setObjectName("fleetFooter")
        self.footer.setWordWrap(True)
        self.footer.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.addWidget(targets_box)
        splitter.addWidget(queue_box)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addWidget(self.hint)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.footer)

        dispatcher.snapshotReady.connect(self.show_snapshot)
        dispatcher.failed.connect(self._failed)
        self.show_snapshot(None)

    # -- what the window calls -------------------------------------------------------------
    def show_queued(self, run_dir: Path, waits_for: str, queued_at: float) -> None:
        """Say that the run in ``run_dir`` was just queued, and what it waits for; select it once listed.

        The note stays until a look taken after ``queued_at`` no longer finds the run waiting.
        """
        self.banner.setText(f"<b>{run_dir.name}</b> is queued — waits for {waits_for}. "
                            "It starts by itself when a target frees up.")
        self.banner.show()
        self._banner_run = (str(run_dir), queued_at)
        self.pending_selection = str(run_dir)
        self.dispatcher.refresh()

    def show_snapshot(self, snapshot: FleetSnapshot | None) -> None:
        """Show the targets and the queue as ``snapshot`` has them (None: nothing to show yet)."""
        self._fill_targets(snapshot)
        selected = self.selected_run()
        self.model.set_rows(snapshot.queue if snapshot else [])
        self.queue_stack.setCurrentIndex(1 if self.model.rows else 0)
        if snapshot is None:
            self.empty.setText(NO_WORKSPACE if self.dispatcher.workspace is None else "Looking at the queue…")
            self.footer.setText("")
        else:
            self.empty.setText(EMPTY_QUEUE)
            self.footer.setStyleSheet("")
            self.footer.setText(f"Looked at {time.strftime('%H:%M:%S', time.localtime(snapshot.taken_at))} · "
                                f"this desk is {self.dispatcher.desk}" + self._gpu_report)
            self._update_banner(snapshot)
        wanted = self.pending_selection or selected
        row = self.model.row_of(wanted) if wanted else -1
        if row >= 0:
            self.table.selectRow(row)
            if wanted == self.pending_selection:
                self.pending_selection = None
        self._update_buttons()

    def _update_banner(self, snapshot: FleetSnapshot) -> None:
        if self._banner_run is None:
            return
        path, queued_at = self._banner_run
        waiting = any(str(r.entry.run_dir) == path and r.entry.state == "queued" for r in snapshot.queue)
        if not waiting and snapshot.taken_at > queued_at:
            self.banner.hide()  # it went out (a target freed up) or was cancelled: it waits no more
            self._banner_run = None

    def selected_run(self) -> str | None:
        """The run folder of the selected queue row, if any."""
        rows = self.table.selectionModel().selectedRows()
        return rows[0].data(RUN_ROLE) if rows else None

    def selected_row(self) -> QueueRow | None:
        """The selected queue row, if any."""
        path = self.selected_run()
        index = self.model.row_of(path) if path else -1
        return self.model.rows[index] if index >= 0 else None

    # -- targets ---------------------------------------------------------------------------
    def check_gpus(self) -> None:
        """Ask the targets whose GPUs are not known for them (all when every one is known), in a worker."""
        snapshot = self.dispatcher.snapshot
        if snapshot is None or self._checking:
            return
        set_up = [load.target for load in snapshot.loads if load.target is not None]
        targets = [t for t in set_up if t.name not in snapshot.gpus] or set_up
        if not targets:
            return
        self._checking = True
        self.check_button.setEnabled(False)
        self.footer.setStyleSheet("")
        self.footer.setText(f"Asking {', '.join(t.name for t in targets)} for {'its' if len(targets) == 1 else 'their'} "
                            "GPUs…")
        context, workspace, notes = self.dispatcher.context, self.dispatcher.workspace, gpu_notes_file()
        # The saved targets are read in the worker too: an unreadable file is said in the footer.
        self.dispatcher.runner.start(lambda: check_gpus(targets, context(), workspace, notes),
                                     on_done=self._gpus_checked, on_error=self._gpu_check_failed, owner=self)

    def _gpus_checked(self, answers: list[GpuAnswer]) -> None:
        self._checking = False
        # Kept under the looks that follow: a target that could not tell says why until the next check.
        self._gpu_report = f"\nGPUs checked at {time.strftime('%H:%M')}: " + " · ".join(a.line() for a in answers)
        self._untold = {a.target for a in answers if a.gpus is None}
        self.dispatcher.refresh()

    def _gpu_check_failed(self, message: str) -> None:
        self._checking = False
        self._failed(f"The GPUs could not be checked: {message}")
        self.check_button.setEnabled(self.dispatcher.snapshot is not None)

    def _fill_targets(self, snapshot: FleetSnapshot | None) -> None:
        self.targets.clear()
        self.check_button.setEnabled(snapshot is not None and not self._checking
                                     and any(load.target is not None for load in snapshot.loads))
        if snapshot is None:
            return
        for load in snapshot.loads:
            item = QTreeWidgetItem(self.targets, [self._target_name(load), self._gpus(snapshot, load),
                                                  self._load_text(load), ""])
            if load.name not in snapshot.gpus:
                item.setToolTip(1, "Its trainer reports its GPUs when you press Test / preflight on the Targets "
                                   "tab, and at every start there from this desk")
            font = item.font(0)
            font.setBold(True)
            item.setFont(0, font)
            for run in load.running:
                QTreeWidgetItem(item, [run.name, "", _run_text(run), _since(run.started_at)]).setToolTip(0, str(run.path))
            for name in load.next:
                QTreeWidgetItem(item, [name, "", "being started from the queue", ""])
            item.setExpanded(True)

    @staticmethod
    def _target_name(load: TargetLoad) -> str:
        if load.target is None:
            return f"{load.name} (not set up on this desk)"
        if isinstance(load.target, LocalTarget):
            return load.name if load.name == THIS_COMPUTER else f"{load.name} (this computer)"
        return place_label(load.target)

    def _gpus(self, snapshot: FleetSnapshot, load: TargetLoad) -> str:
        note = snapshot.gpus.get(load.name)
        if note is not None:
            return note.describe()
        return "not known (see below)" if load.name in self._untold else "not checked yet"

    @staticmethod
    def _load_text(load: TargetLoad) -> str:
        used = len(load.running) + len(load.next)
        if load.target is None:
            return f"{used} running"
        return f"{'free' if load.free else 'busy'} ({used} of {load.max_jobs} in use)"

    # -- queue buttons ---------------------------------------------------------------------
    def _update_buttons(self) -> None:
        row = self.selected_row()
        self.detail.setText(detail_html(row) if row is not None else
                            "Select a queued run to see what it waits for, target by target.")
        waiting = row is not None and row.entry.state == "queued" and row.entry.claim is None
        places = [r.place for r in self.model.rows if r.place]
        self.top_button.setEnabled(waiting and row.place > 1)
        self.up_button.setEnabled(waiting and row.place > 1)
        self.down_button.setEnabled(waiting and bool(places) and row.place < max(places))
        self.requeue_button.setEnabled(row is not None and row.entry.state == "failed" and row.entry.claim is None)
        self.cancel_button.setEnabled(row is not None and row.entry.claim is None)

    def _move(self, where: str) -> None:
        row = self.selected_row()
        if row is not None and self.dispatcher.workspace is not None:
            self.pending_selection = str(row.entry.run_dir)  # it stays selected in its new place
            self.dispatcher.change(move, self.dispatcher.workspace, row.entry.run_dir, where, self.dispatcher.desk)

    def _requeue(self) -> None:
        row = self.selected_row()
        if row is not None:
            self.requeue_run(row.entry.run_dir)

    def requeue_run(self, run_dir: Path | str) -> None:
        """Put the run in ``run_dir``, whose start from the queue failed, back into the queue (here and on the Runs page)."""
        self.pending_selection = str(run_dir)
        self.dispatcher.change(requeue, Path(run_dir), self.dispatcher.desk)

    def _cancel(self) -> None:
        row = self.selected_row()
        if row is not None:
            self.cancel_run(row.entry.run_dir)

    def cancel_run(self, run_dir: Path | str) -> None:
        """Take the queued run in ``run_dir`` out of the queue, after asking (Cancel… here and on the Runs page)."""
        run_dir = Path(run_dir)
        answer = QMessageBox.question(
            self, "Cancel queued run",
            f"Take {run_dir.name} out of the queue? It will not start.\n\n"
            f"Its folder stays ({run_dir}); start it again from the Train tab whenever you like.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        if answer == QMessageBox.StandardButton.Yes:
            self.dispatcher.change(cancel, run_dir, self.dispatcher.desk)

    def _failed(self, message: str) -> None:
        self.footer.setStyleSheet("color: #dc2626;")
        self.footer.setText(message)
