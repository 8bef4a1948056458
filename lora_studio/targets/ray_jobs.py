"""A trainer command on a Ray cluster: submitted as a Ray job, followed and stopped through Ray's Jobs API.

Ray queues the job until a node has the GPUs and CPUs the target asks for, then runs the
entrypoint there: a ``/bin/sh`` line that enters the run folder on the share and runs
``python -m trainer ...`` with its output both in the run's ``train.log`` (the run folder
stays the contract) and in Ray's job log. ``run.json`` records the cluster's address and the
job's id, so liveness and stop reach the job from any desk, even without the target saved.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Mapping

from trainer.fsutil import atomic_write_text
from trainer.rundir import LOG_FILE, STATUS_FILE, STOP_FILE, read_status

from . import commands
from .errors import LaunchFailed, TargetError
from .launch import MappedJob, record_start, trainer_argv
from .model import RayTarget
from .ray_client import PENDING, RayJob, RayJobsClient, RayUnreachable
from .runinfo import RunInfo, read_run_info, start_moment
from .stop import StopResult, request_stop, stop_now as _stop_now, stop_run

RAY_LAUNCH = "ray_job"   # run.json's ``launch`` for a run started through Ray's Jobs API
# The entrypoint's exit code when it found the run's STOP file: stopped while Ray held it queued,
# so the trainer was never started. Beside commands.EXIT_NO_RUN_DIR, outside the trainer's own codes.
EXIT_CANCELLED = 98
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def submission_id(run_dir: Path | str, now: float | None = None) -> str:
    """A Ray submission id for one start of a run: its folder's name, the time and a few random letters.

    Ray refuses an id it has seen before, even of a finished job, so a resume gets a new one.
    """
    name = _UNSAFE.sub("-", Path(run_dir).name).strip("-.")[:60] or "run"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    return f"{name}-{stamp}-{secrets.token_hex(2)}"


def entrypoint(target: RayTarget, mapped: MappedJob) -> str:
    """The shell line Ray runs on the node it picks (``/bin/sh``; every value quoted).

    The trainer's output goes to the run's ``train.log`` as with every other launcher (the
    trainer then writes each line once), and ``tail -f`` copies what it appends into Ray's job
    log, so ``ray job logs`` and the dashboard show it too; the job's exit code is the trainer's.
    A STOP file present at the start means the run was stopped while it waited in Ray's queue:
    the trainer is not started.
    """
    log = shlex.quote(LOG_FILE)
    trainer = commands.env_prefix({"PYTHONUNBUFFERED": "1"}) + commands.join(trainer_argv(target, mapped))
    return (f"cd {shlex.quote(mapped.run_dir)} || exit {commands.EXIT_NO_RUN_DIR}; "
            f"if [ -e {STOP_FILE} ]; then echo 'LoRA Studio: stopped while it waited in the Ray queue; "
            f"the trainer was not started'; exit {EXIT_CANCELLED}; fi; "
            f": >> {log}; tail -n 0 -f {log} & copier=$!; "
            f"{trainer} >> {log} 2>&1 < /dev/null & trainer=$!; "
            # tail reads what was appended last within a second: let it, then end it.
            "wait $trainer; code=$?; sleep 1; kill $copier 2>/dev/null; exit $code")


def ray_job_of(info: RunInfo | None) -> tuple[str, str] | None:
    """(address, submission id) of a run started as a Ray job, from its run.json; None for other runs."""
    if info is None or info.launch != RAY_LAUNCH:
        return None
    address, job_id = info.extra.get("ray_address"), info.extra.get("ray_job_id")
    return (str(address), str(job_id)) if address and job_id else None


def _refuse_held(local_run_dir: Path) -> None:
    """Never submit a run a second time while Ray still holds its earlier job (queued or running)."""
    earlier = ray_job_of(read_run_info(local_run_dir))
    if earlier is None:
        return
    address, job_id = earlier
    try:
        job = RayJobsClient(address).job(job_id)
    except RayUnreachable:
        return  # that cluster is gone or down: nothing of it runs the trainer that this start could meet
    if job is not None and job.active:
        raise LaunchFailed(f"Ray at {address} still holds this run as job {job_id} ({job.status.lower()})",
                           "stop it first (Runs page), or wait for it to end")


def submit_run(target: RayTarget, mapped: MappedJob, extra: Mapping[str, Any] | None = None) -> RunInfo:
    """Submit ``mapped`` to the Ray cluster of ``target`` and write run.json; returns once Ray accepted it.

    Ray starts it when a node has the target's GPUs and CPUs free; until then the job is PENDING.
    """
    client = RayJobsClient(target.address)
    local_run_dir = Path(mapped.local_run_dir)
    _refuse_held(local_run_dir)
    # A STOP left from an earlier stop would cancel this start at its entrypoint: this is a new start.
    (local_run_dir / STOP_FILE).unlink(missing_ok=True)
    job_name = submission_id(local_run_dir)
    started = start_moment(local_run_dir)
    job_id = client.submit(entrypoint(target, mapped), job_name, num_gpus=target.num_gpus, num_cpus=target.num_cpus,
                           runtime_env=target.runtime_env_dict(),
                           metadata={"lora_studio_run": local_run_dir.name, "lora_studio_target": target.name})
    host = urllib.parse.urlsplit(client.address).netloc  # the trainer's node is Ray's choice: status.json says which
    return record_start(target, mapped, pid=0, host=host, launch=RAY_LAUNCH, started=started,
                        extra={**(extra or {}), "ray_address": client.address, "ray_job_id": job_id})


class RayJobControl:
    """Liveness and stop of a run's Ray job (the :class:`~.control.ProcessControl` of Ray runs).

    Alive is "Ray still holds it": queued for resources or running. Both signals are Ray's stop,
    which sends the entrypoint SIGTERM and kills it a few seconds later.
    """

    def __init__(self, address: str, job_id: str) -> None:
        self.client, self.job_id = RayJobsClient(address), job_id

    def job(self) -> RayJob | None:
        """The job as Ray reports it now (None: the cluster does not know it)."""
        return self.client.job(self.job_id)

    def is_alive(self) -> bool:
        job = self.job()
        return job is not None and job.active

    def signal(self, name: str) -> None:
        self.client.stop(self.job_id)

    def logs(self) -> str:
        """The job's output as Ray kept it (the run folder's train.log has the same)."""
        return self.client.logs(self.job_id)

    def close(self) -> None:
        """Nothing to close: every call is one HTTP request."""


def control_of(info: RunInfo | None) -> RayJobControl:
    """The control of a Ray run from its run.json; TargetError for a run that is not one."""
    job = ray_job_of(info)
    if job is None:
        raise TargetError("the run's run.json names no Ray job", "this run was not started on a Ray target")
    return RayJobControl(*job)


def _mark_cancelled(run_dir: Path) -> None:
    """status.json for a run stopped while Ray held it queued: the trainer never ran to write one."""
    if read_status(run_dir) is not None:
        return
    now = time.time()
    status = {"state": "stopped", "step": 0, "total_steps": None, "heartbeat": now, "stopped_at": now,
              "stopped_by": "cancelled while queued by Ray", "error": None}
    try:
        atomic_write_text(run_dir / STATUS_FILE, json.dumps(status, indent=1) + "\n")
    except OSError:
        pass  # read-only share: Ray's own state still says stopped once it lets go of the job


def stop_ray_run(run_dir: Path | str, *, now: bool = False, grace_s: float = 60.0, kill_after_s: float = 60.0,
                 poll_s: float = 1.0, use_stop_file: bool = True,
                 on_stage: Callable[[str], None] | None = None) -> StopResult:
    """Stop a Ray run the way :func:`~.stop.stop_run` stops others: the STOP file, then Ray's stop.

    ``now`` skips the STOP file's wait (:func:`~.stop.stop_now`). A run still waiting in Ray's
    queue is cancelled at once: the STOP file keeps its entrypoint from starting the trainer and
    Ray's stop ends the job when it would start. With the cluster unreachable only the STOP file
    works (``now`` then raises).
    """
    run_dir = Path(run_dir)
    report = on_stage or (lambda stage: None)
    control = control_of(read_run_info(run_dir))
    try:
        job = control.job()
    except RayUnreachable:
        if now:
            raise
        return stop_run(run_dir, None, grace_s=grace_s, poll_s=poll_s, on_stage=on_stage)
    if job is not None and job.status == PENDING:
        report("stop_file")
        request_stop(run_dir)
        control.signal("TERM")
        _mark_cancelled(run_dir)
        return StopResult("stop_file", True, (read_status(run_dir) or {}).get("state"),
                          "Ray had not started the run yet: the job ends when Ray would start it, without training")
    if now:
        return _stop_now(run_dir, control, kill_after_s=kill_after_s, poll_s=poll_s, on_stage=on_stage)
    return stop_run(run_dir, control, grace_s=grace_s, kill_after_s=kill_after_s, poll_s=poll_s,
                    use_stop_file=use_stop_file, on_stage=on_stage)
