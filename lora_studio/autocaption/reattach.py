"""Finding a dataset's auto-caption jobs again: still running, or ended with results not applied.

A job's run folder (``<workspace>/runs/label-*``) holds ``request.json`` (which dataset,
which images, which mode), the job's own files, and, once the user applied or discarded
its results, ``applied.json``. So after the app was closed (or crashed, or the laptop
moved) opening the dataset again can offer the job: everything is on the shared storage.
Qt-free and blocking: the scan runs in a worker.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from trainer.fsutil import atomic_write_text
from trainer.rundir import ACTIVE_STATES

from ..targets.runs import summarize_run
from .request import LABEL_PREFIX, RESULTS_FILE, RUNS_DIR, LabelRequest, read_request

APPLIED_FILE = "applied.json"  # the user dealt with the results: applied, or discarded them
SCAN_LIMIT = 50  # newest label folders looked at; older unapplied jobs are not worth a bar


@dataclass(frozen=True)
class PendingJob:
    """A job of the open dataset that needs the user: watch it, or apply its results."""

    run_dir: Path
    request: LabelRequest
    target: str  # where it runs ("" for this computer's app)
    state: str  # running | finished | interrupted
    step: int
    total: int
    results: int  # images the job generated text for
    started_at: float

    @property
    def running(self) -> bool:
        """Whether the job has not ended yet."""
        return self.state == "running"


def mark_handled(run_dir: Path, action: str, count: int = 0) -> None:
    """Record that the results were applied (``count`` captions) or discarded: never offered again."""
    atomic_write_text(run_dir / APPLIED_FILE, json.dumps({"action": action, "count": count, "at": time.time()}) + "\n")


def is_handled(run_dir: Path) -> bool:
    """Whether the user already applied or discarded this job's results."""
    return (run_dir / APPLIED_FILE).exists()


def count_results(run_dir: Path) -> int:
    """Images in ``captions.jsonl`` with generated text (a half-written last line is skipped)."""
    count = 0
    try:
        with open(run_dir / RESULTS_FILE, encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                count += bool(isinstance(record, dict) and record.get("generated"))
    except OSError:
        return 0
    return count


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b


def pending_job(run_dir: Path, dataset: Path) -> PendingJob | None:
    """The job in ``run_dir`` when it belongs to ``dataset`` and still needs the user, else None."""
    if is_handled(run_dir):
        return None
    found = read_request(run_dir)
    if found is None:
        return None
    request, record = found
    if not _same_folder(request.dataset, dataset):
        return None
    summary = summarize_run(run_dir)
    results = count_results(run_dir)
    if summary.state in (*ACTIVE_STATES, "launched"):
        state = "running"
    elif summary.state in ("completed", "stopped") and results:
        state = "finished"
    elif summary.state in ("lost", "failed") and results:
        state = "interrupted"  # what it did before it ended can still be applied
    else:
        return None  # nothing to watch and nothing to apply
    total = int(summary.total_steps or len(request.images))
    return PendingJob(run_dir, request, str(record.get("target") or ""), state, summary.step, total, results,
                      float(record.get("created") or summary.started_at or 0.0))


def find_pending_jobs(workspace: Path, dataset: Path, limit: int = SCAN_LIMIT) -> list[PendingJob]:
    """The dataset's jobs that need the user, newest first (running ones before finished ones)."""
    root = workspace / RUNS_DIR
    try:
        folders = sorted((p for p in root.iterdir() if p.name.startswith(LABEL_PREFIX) and p.is_dir()),
                         key=lambda p: p.name, reverse=True)[:limit]
    except OSError:
        return []  # no runs folder yet, or the share is away: nothing to offer
    jobs = [job for job in (pending_job(folder, dataset) for folder in folders) if job is not None]
    return sorted(jobs, key=lambda job: (not job.running, -job.started_at))
