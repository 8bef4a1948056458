"""A Ray run's state: what its run folder says, and what Ray says of its job where the folder cannot know.

The run folder is the contract and its final states win. But before the trainer writes its
first status the folder cannot tell "waiting in Ray's queue for a GPU" (which may last hours)
from "never started", and a trainer killed with its node writes no final state: Ray's job
status answers both. :func:`combine` asks nobody; :func:`with_ray_states` asks Ray.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from trainer.rundir import FINAL_STATES, read_status

from . import commands
from .errors import TargetError
from .ray_client import PENDING, RUNNING, STOPPED, RayJob, RayJobsClient
from .ray_jobs import EXIT_CANCELLED, ray_job_of
from .runs import RunSummary, list_runs

QUEUED = "queued"          # Ray holds the job until a node has the resources it asks for
NOT_YET = ("launched", "not_started")   # the trainer has written no status.json yet
STATUS_TIMEOUT_S = 2.0     # a listing every few seconds must not hang on a cluster that went down


def ray_error(job: RayJob) -> dict[str, str]:
    """The ``{message, hint}`` of a Ray job that ended before its trainer could say why."""
    if job.exit_code == commands.EXIT_NO_RUN_DIR:
        return {"message": "the node Ray started the run on does not see the run folder",
                "hint": "check the target's path mappings: every node of the cluster must mount the share there"}
    if job.error_type == "JOB_SUPERVISOR_ACTOR_START_TIMEOUT":
        return {"message": "Ray gave up waiting for a node with the GPUs and CPUs the run asks for",
                "hint": "start it again when the cluster has room, or raise RAY_JOB_START_TIMEOUT_SECONDS on the head node"}
    first = job.message.split(", last available logs", 1)[0].strip().splitlines()
    detail = f": {first[0]}" if first else ""
    return {"message": f"Ray reports the job {job.status.lower()}{detail}",
            "hint": f"see the run's train.log, or the Ray job's log (ray job logs {job.submission_id})"}


def combine(summary: RunSummary, job: RayJob | None) -> RunSummary:
    """``summary`` with Ray's word on its job ``job`` (None: Ray was not asked, or does not know it)."""
    if job is None:
        return summary
    state, error = summary.state, summary.error
    if state in FINAL_STATES:
        pass  # the trainer said how it ended
    elif job.status == PENDING:
        state = QUEUED
    elif job.status == RUNNING:
        if state == "not_started":
            state = "launched"  # Ray runs it: setting up a runtime environment can take minutes
        elif state == "lost":
            # Ray says the trainer runs: a stale heartbeat is a stalled trainer, not a dead machine,
            # and must not start a second one beside it (automatic recovery starts lost runs).
            state = str((read_status(summary.path) or {}).get("state") or "training")
    elif job.exit_code == EXIT_CANCELLED or job.status == STOPPED:
        state = "stopped"
    elif state in NOT_YET:
        state, error = "failed", ray_error(job)
    else:  # the folder says it trains, Ray says its job ended: killed, or its node died
        state, error = "lost", error or ray_error(job)
    return replace(summary, state=state, error=error, ray_job=job)


def with_ray_states(runs: list[RunSummary], timeout: float = STATUS_TIMEOUT_S) -> list[RunSummary]:
    """``runs`` with each unfinished Ray run's state combined with its job's (one request a run).

    A cluster that does not answer leaves its runs as their folders say, and is asked once a call.
    """
    down: set[str] = set()
    combined = []
    for run in runs:
        where = ray_job_of(run.info)
        if where is None or run.state in FINAL_STATES or where[0] in down:
            combined.append(run)
            continue
        try:
            job = RayJobsClient(where[0], timeout=timeout).job(where[1])
        except TargetError:
            down.add(where[0])
            combined.append(run)
            continue
        combined.append(combine(run, job))
    return combined


def list_runs_seen(workspace: Path | str) -> list[RunSummary]:
    """:func:`~.runs.list_runs` with Ray's word on the Ray runs (blocking: call it from a worker)."""
    return with_ray_states(list_runs(workspace))
