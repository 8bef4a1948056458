"""One auto-caption job: the trainer's ``label`` command on the app's one job stack.

The job is started and followed like any trainer command (:mod:`lora_studio.jobs`): detached
on the chosen target, in its run folder, found again after a restart. What is about
captions lives here: the request and image list written first, progress from
``status.json``, the results from ``captions.jsonl`` (read incrementally, a few small reads
per second, the way the Runs page follows training), and how the end reads in words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from trainer.rundir import JsonlTail, read_status

from ..jobs.follow import RunFolderJob
from ..jobs.places import Place
from ..targets.runs import EXIT_INVALID, EXIT_LOST, EXIT_OK
from ..workers.tasks import TaskRunner
from .request import RESULTS_FILE, LabelRequest, write_images_file, write_request

FORCE_AFTER_MS = 15_000  # after a stop request, offer to end the process at once
SHARE_POLL_MS = 1000  # a job on a target: its run folder is on a share another machine writes


@dataclass
class JobEnd:
    """How a job ended, in words for the dialog."""

    state: str  # completed | stopped | failed | invalid
    message: str
    problems: list[str] = field(default_factory=list)  # input problems (exit 2), one per line

    @property
    def has_results(self) -> bool:
        """Whether its results can be previewed and applied (a stopped job keeps what it did)."""
        return self.state in ("completed", "stopped")


def input_problems(output: str) -> list[str]:
    """The ``error: ...`` lines the trainer prints for bad input (exit 2)."""
    return [line[len("error: "):] for line in output.splitlines() if line.startswith("error: ")]


def describe_end(code: int, output: str, status: dict[str, Any], stop_requested: bool) -> JobEnd:
    """Turn the exit code, the console output and the final status into a :class:`JobEnd`."""
    state = status.get("state")
    if code == EXIT_OK:  # done or stopped on request (the trainer's exit codes)
        if state == "stopped":
            return JobEnd("stopped", f"Stopped after {status.get('step', 0)} of {status.get('total_steps', 0)} images.")
        return JobEnd("completed", "Done.")
    if code == EXIT_INVALID:
        problems = input_problems(output) or [output.strip()[-2000:]]
        return JobEnd("invalid", "The job did not start:", problems)
    error = status.get("error") or {}
    if stop_requested and not error:  # signalled before it said anything of its own
        return JobEnd("stopped", "Stopped.")
    if error:
        return JobEnd("failed", f"The job failed: {error.get('message', '')}", [error.get("hint", "")])
    tail = "\n".join(output.strip().splitlines()[-8:])
    return JobEnd("failed", f"The captioning process ended unexpectedly (exit {code}).", [tail] if tail else [])


class LabelJob(QObject):
    """Start, follow and stop one job; emits what it finds on the UI thread."""

    statusChanged = Signal(dict)
    resultsAdded = Signal(list)  # new captions.jsonl records
    finished = Signal(object)  # JobEnd

    def __init__(self, request: LabelRequest, run_dir: Path, parent: QObject | None = None,
                 poll_ms: int = 300) -> None:
        super().__init__(parent)
        self.request = request
        self.run_dir = run_dir
        self.process: RunFolderJob | None = None
        self.tail = JsonlTail(run_dir / RESULTS_FILE)
        self.records: list[dict[str, Any]] = []
        self.status: dict[str, Any] = {}
        self.stop_requested = False
        self.end: JobEnd | None = None
        self.timer = QTimer(self, interval=poll_ms)
        self.timer.timeout.connect(self.poll)

    def start(self, place: Place, runner: TaskRunner) -> None:
        """Write the image list and the request, and start the job on ``place`` (returns at once)."""
        images_file = write_images_file(self.run_dir, self.request.images)
        # The request goes with the run folder, so that a restarted app finds the job for this dataset.
        write_request(self.run_dir, self.request, place.target_name)
        job = self.request.trainer_job(self.run_dir, images_file)
        self.attach(RunFolderJob.start_on(place.target, job, place.context, runner, self),
                    on_share=place.target.kind != "local")

    def attach(self, process: RunFolderJob, on_share: bool = False) -> None:
        """Follow ``process`` (a job just started, or one found again after the app restarted)."""
        self.process = process
        self.process.finished.connect(self._process_finished)
        if on_share:  # another machine writes the run folder: once a second is enough
            self.timer.setInterval(max(self.timer.interval(), SHARE_POLL_MS))
        self.timer.start()
        self.poll()

    @property
    def running(self) -> bool:
        """Whether the job has not ended yet."""
        return self.process is not None and self.end is None

    def poll(self) -> None:
        """Read new results and the status (small, incremental reads)."""
        new = self.tail.read_new() if self.tail.path.exists() else []  # none yet while the model loads
        if new:
            self.records.extend(new)
            self.resultsAdded.emit(new)
        status = read_status(self.run_dir)
        if status is not None and status != self.status:
            self.status = status
            self.statusChanged.emit(status)
        if self.process is not None and self.end is None:
            self.process.observe(status)  # one read of status.json serves the follower too

    def stop(self) -> None:
        """Ask the job to stop after the current batch; what it did so far is kept."""
        if self.running and self.process is not None:
            self.stop_requested = True
            self.process.stop()

    def kill(self) -> None:
        """End the process at once (the user forces it)."""
        if self.running and self.process is not None:
            self.stop_requested = True
            self.process.stop_now()

    def release(self) -> None:
        """Stop following the job (the app is closing); it runs on and can be found again."""
        self.timer.stop()
        if self.process is not None:
            self.process.release()

    def _process_finished(self, code: int, output: str) -> None:
        self.timer.stop()
        try:
            self.poll()  # the last results and the final status
        finally:  # whatever the last read did, the dialog must learn that the job ended
            self.end = describe_end(code, output, self.status, self.stop_requested)
            if code == EXIT_LOST and self.end.state == "failed" and not self.status.get("error") and self.records:
                # Ended in the middle (its process was killed, or its machine stopped): what
                # it captioned is in captions.jsonl and can still be applied.
                done = int(self.status.get("step") or len(self.records))
                self.end = JobEnd("stopped", f"The job was interrupted after {done:,} of "
                                  f"{int(self.status.get('total_steps') or 0):,} images.")
            self.finished.emit(self.end)
