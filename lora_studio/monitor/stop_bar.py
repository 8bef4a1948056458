"""Stopping the shown run: the Stop button, what a stop is waiting for, and Stop now.

Stop asks the trainer to finish its step, save a checkpoint and exit (the STOP file, then
signals: lora_studio/targets/stop.py). A step can take a minute, so while the stop waits the
bar under the run's controls says for how long (from the run's metrics) and offers Stop now,
which ends the trainer at once (SIGTERM, then a kill) at the cost of the step in progress.
Both run in workers of the page's TaskRunner; their stages come back through the task's
progress signal, so they reach the widgets on the UI thread.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from trainer.rundir import FINAL_STATES

from ..targets.api import TargetContext
from ..targets.run_control import stop, stop_now
from ..targets.runs import RunSummary
from ..targets.stop import STAGES, StopResult
from ..workers.tasks import TaskRunner
from .queued_runs import QUEUED_KIND
from .stop_estimate import RECENT_STEPS, StepEstimate, estimate_step, stopping_text

ACTIVE_STATES = ("starting", "preparing", "training", "sampling", "saving", "launched")
# Tints that read on the light and the dark theme alike: amber while the stop waits, green
# once the trainer is gone, red when it could not be stopped.
TONES = {"pending": "217, 119, 6", "done": "21, 128, 61", "failed": "220, 38, 38"}
STYLE = ("QFrame#stopBar {{ background: rgba({rgb}, 0.12); border: 1px solid rgba({rgb}, 0.45); "
         "border-radius: 5px; }} QFrame#stopBar QLabel {{ background: transparent; border: none; }}")
ERROR_COLOR = "#dc2626"
STOP_TIP = "Finish the current step, save a checkpoint and stop (then signal, then kill)"
CANCEL_TIP = "Take the run out of the queue (asks first): it will not start, and its folder stays"
STOP_NOW_TIP = ("End the trainer now (SIGTERM, then a forced kill) instead of waiting for this step.\n"
                "The step in progress is lost: Resume continues from the last checkpoint.")
SIGNAL_TEXT = {"terminate": "Stopping: asked the trainer to quit (SIGTERM)…",
               "kill": "Stopping: the trainer did not quit, ending it (SIGKILL)…"}


@dataclass
class _Stop:
    """One run's stop: the workers out for it ("graceful", "now") and what each reported."""

    started_at: float | None            # the trainer's start when Stop was pressed (a resume changes it)
    stage: str = "stop_file"
    hurried: bool = False               # Stop now is under way: its outcome, not the graceful one's, counts
    running: set[str] = field(default_factory=set)
    results: dict[str, StopResult] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def deciding(self) -> str:
        return "now" if self.hurried else "graceful"

    @property
    def pending(self) -> bool:
        return self.deciding in self.running

    @property
    def result(self) -> StopResult | None:
        return self.results.get(self.deciding)


class StopBar(QFrame):
    """The stop of the shown run: hidden until Stop is pressed, then its progress and outcome."""

    stopEnded = Signal(str)  # run folder: a stop of it reported back (the page refreshes the run)
    cancelQueued = Signal(str)  # run folder: Stop on a run that waits in the queue (it has no trainer to stop)

    def __init__(self, runner: TaskRunner, context: Callable[[], TargetContext | None], parent: QWidget | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(parent)
        self.setObjectName("stopBar")
        self.tone = ""
        self.runner, self.context, self.clock = runner, context, clock
        self.grace_s = 60.0  # how long the STOP file gets before the signals (stop_run's grace_s)
        self.stops: dict[str, _Stop] = {}
        self.run_dir: Path | None = None
        self._summary: RunSummary | None = None
        self._status: dict = {}
        self._series = None  # the shown run's MetricSeries (for the step estimate)
        # The page puts Stop with its other run buttons; the bar below them follows what it started.
        self.stop_button = QPushButton("Stop", parent)
        self.stop_button.setObjectName("stopButton")
        self.stop_button.setToolTip(STOP_TIP)
        self.stop_button.clicked.connect(self.stop)
        self.text = QLabel(self)
        self.text.setObjectName("stopText")
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.stop_now_button = QPushButton("Stop now", self)
        self.stop_now_button.setObjectName("stopNowButton")
        self.stop_now_button.setToolTip(STOP_NOW_TIP)
        self.stop_now_button.setAutoDefault(False)
        self.stop_now_button.clicked.connect(self.stop_now)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 4, 6, 4)
        layout.setSpacing(10)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.stop_now_button)
        # As tall with Stop now as without it: the page below does not jump when the stop ends.
        self.text.setMinimumHeight(self.stop_now_button.sizeHint().height())
        self.hide()

    # -- starting stops ----------------------------------------------------------------
    def stop(self) -> None:
        """Stop the shown run after its current step: STOP file, then SIGTERM, then kill."""
        if self.run_dir is None:
            return
        if self._summary is not None and self._summary.kind == QUEUED_KIND:
            self.cancelQueued.emit(str(self.run_dir))
            return
        run_dir, key, grace_s = self.run_dir, str(self.run_dir), self.grace_s
        entry = self.stops[key] = _Stop(self._summary.started_at if self._summary else None, running={"graceful"})

        def work(progress=None, cancel=None) -> StopResult:
            try:
                context = self.context()
            except Exception:  # noqa: BLE001 - unreadable targets file: the STOP file alone still works
                context = None
            return stop(run_dir, context, grace_s=grace_s,
                        on_stage=lambda stage: progress(STAGES.index(stage), len(STAGES)))

        self._start(work, key, entry, "graceful")

    def stop_now(self) -> None:
        """Skip the wait for the shown run's step: SIGTERM, then kill (the step is lost)."""
        entry = self.stops.get(str(self.run_dir)) if self.run_dir is not None else None
        if entry is None or not entry.pending or entry.hurried:
            return
        run_dir, key = self.run_dir, str(self.run_dir)
        entry.hurried, entry.stage = True, "terminate"
        entry.errors.pop("now", None)
        entry.running.add("now")

        def work(progress=None, cancel=None) -> StopResult:
            return stop_now(run_dir, self.context(), on_stage=lambda stage: progress(STAGES.index(stage), len(STAGES)))

        self._start(work, key, entry, "now")

    def _start(self, work: Callable[..., StopResult], key: str, entry: _Stop, kind: str) -> None:
        self.runner.start(work, with_progress=True,
                          on_progress=lambda index, _total: self._stage(entry, kind, STAGES[index]),
                          on_done=lambda result: self._done(key, entry, kind, result),
                          on_error=lambda message: self._failed(key, entry, kind, message))
        self._update()

    # -- what the workers report (UI thread) -------------------------------------------
    def _stage(self, entry: _Stop, kind: str, stage: str) -> None:
        if (kind == "now") == entry.hurried:  # the stages of a superseded graceful stop are not news
            entry.stage = stage
            self._update()

    def _done(self, key: str, entry: _Stop, kind: str, result: StopResult) -> None:
        # Once Stop now ends the trainer, the graceful stop sees it gone and would claim that
        # "the trainer saved a checkpoint": what each reported is kept, the deciding one shown.
        entry.running.discard(kind)
        entry.results[kind] = result
        self._ended(key)

    def _failed(self, key: str, entry: _Stop, kind: str, message: str) -> None:
        entry.running.discard(kind)
        if kind == "now":
            # No way to signal the trainer (no connection, not started here): the STOP file
            # already asked for still works, so the graceful stop counts again.
            entry.hurried, entry.stage = False, "stop_file"
            entry.errors[kind] = f"Stop now failed: {message}"
        else:
            entry.errors[kind] = f"The run could not be stopped: {message}"
        self._ended(key)

    def _ended(self, key: str) -> None:
        self._update()
        self.stopEnded.emit(key)

    # -- showing -----------------------------------------------------------------------
    def busy(self, run_dir: Path | str) -> bool:
        """Whether a stop worker of ``run_dir`` has not reported back yet."""
        entry = self.stops.get(str(run_dir))
        return entry is not None and bool(entry.running)

    def show_run(self, run_dir: Path | None, summary: RunSummary | None, status: dict | None = None,
                 series=None) -> None:
        """Follow ``run_dir`` as the page shows it now (called on every refresh of the page)."""
        self.run_dir, self._summary = run_dir, summary
        self._status, self._series = status or {}, series
        entry = self.stops.get(str(run_dir)) if run_dir is not None else None
        if entry is not None and not entry.running and summary is not None and summary.state in ACTIVE_STATES \
                and summary.started_at != entry.started_at:
            del self.stops[str(run_dir)]  # started again since it stopped: old news
        self._update()

    def _update(self) -> None:
        summary = self._summary
        entry = self.stops.get(str(self.run_dir)) if self.run_dir is not None else None
        pending = entry is not None and entry.pending
        # "queued": held by a Ray cluster until a node is free; Stop takes it out before the trainer starts.
        # A run in the fleet's queue (waiting, or its start failed) is cancelled instead.
        queued = summary is not None and summary.kind == QUEUED_KIND
        stoppable = summary is not None and (queued or summary.state in (*ACTIVE_STATES, "queued"))
        self.stop_button.setEnabled(stoppable and not pending)
        # The run folder may say it is over before the stop's worker notices (it polls): it no longer "stops" then.
        stopping = pending and not (summary is not None and summary.state in FINAL_STATES)
        self.stop_button.setText("Stopping…" if stopping else "Cancel…" if queued else "Stop")
        self.stop_button.setToolTip(CANCEL_TIP if queued else STOP_TIP)
        lines = self._lines(entry, summary) if entry is not None else []
        if not lines:
            self.hide()
            return
        self.text.setText("<br>".join(f"<span style='color: {color}'>{html.escape(text)}</span>" if color
                                      else f"<b>{html.escape(text)}</b>" for text, color in lines))
        can_signal = summary is not None and summary.info is not None
        self.stop_now_button.setVisible(stopping)
        self.stop_now_button.setEnabled(stopping and entry.stage == "stop_file" and not entry.hurried and can_signal)
        self.stop_now_button.setToolTip(STOP_NOW_TIP if can_signal else
                                        "This run was not started by LoRA Studio, so it cannot be signalled from "
                                        "here: it stops after this step, or end it on its machine")
        self.show()

    def _lines(self, entry: _Stop, summary: RunSummary | None) -> list[tuple[str, str]]:
        """The bar's lines as (text, colour; "" for the bold headline), and its tone set to match."""
        lines: list[tuple[str, str]] = []
        ended = summary is not None and summary.state in FINAL_STATES
        result = entry.result
        if entry.pending and ended:
            # The run folder already says it is over; the worker only has to notice (it polls).
            lines.append(("The trainer saved a checkpoint and stopped." if summary.state == "stopped"
                          else f"The trainer {summary.state}.", ""))
        elif entry.pending:
            if entry.stage == "stop_file":
                state = str(self._status.get("state") or (summary.state if summary else ""))
                lines.append((stopping_text(state, self._estimate()), ""))
            else:
                lines.append((SIGNAL_TEXT[entry.stage], ""))
        elif result is not None and result.stopped:
            lines.append((f"{result.message[:1].upper()}{result.message[1:]}.", ""))
        elif result is not None and ended:
            # A step longer than the grace: the stop gave up waiting, then the trainer stopped.
            lines.append((f"The trainer {summary.state} after all (its step took longer than the stop waited).", ""))
        elif result is not None:
            lines.append((f"Not stopped: {result.message}.", ERROR_COLOR))
        errors = [entry.errors[kind] for kind in (entry.deciding, "now") if kind in entry.errors]
        lines += [(error, ERROR_COLOR) for error in dict.fromkeys(errors)]
        done = ended or (result is not None and result.stopped)
        self._set_tone("done" if done else "pending" if entry.pending else "failed")
        return lines

    def _set_tone(self, tone: str) -> None:
        if tone != self.tone:  # a style sheet is re-parsed on every set: only when it changes
            self.tone = tone
            self.setStyleSheet(STYLE.format(rgb=TONES[tone]))

    def _estimate(self) -> StepEstimate:
        series = self._series
        if series is None or series.loading or not len(series):
            return StepEstimate(None, None)
        last = RECENT_STEPS + 1
        return estimate_step(series.column("step")[-last:].tolist(), series.column("time")[-last:].tolist(),
                             self.clock())
