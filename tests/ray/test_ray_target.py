"""The Ray target against a real Ray head on loopback: a tiny SD training submitted through Ray's Jobs
API runs to the end with the run folder as the contract; stop through the API (STOP file, then Ray's
stop); a run waiting in Ray's queue for a GPU shows as queued and is cancelled; a head that is down
is named at preflight, fast.
"""

from __future__ import annotations

import socket
import sys
import time

import pytest

from lora_studio.fleet.api import fleet_snapshot
from lora_studio.targets.api import TargetContext, launch, preflight, start
from lora_studio.targets.errors import ConnectionFailed
from lora_studio.targets.model import RayTarget, TargetSettings
from lora_studio.targets.run_control import is_running, stop, stop_now
from lora_studio.targets.preflight import ERROR, OK
from lora_studio.targets.ray_client import PENDING, STOPPED, SUCCEEDED, RayJobsClient
from lora_studio.targets.ray_jobs import RAY_LAUNCH, control_of
from lora_studio.targets.ray_state import QUEUED, list_runs_seen
from lora_studio.targets.runinfo import read_run_info
from lora_studio.targets.runs import summarize_run
from tests.cli_helpers import free_port
from tests.targets.helpers import tail_log, wait_for, wait_state
from trainer.checkpoint import list_checkpoints
from trainer.rundir import read_status


def ray_target(address: str, **fields) -> RayTarget:
    """A Ray target whose runs use this interpreter's trainer, on the CPU (the test head has no GPU)."""
    return RayTarget(**{"name": "ray-lab", "address": address, "python": sys.executable, "num_gpus": 0,
                        "num_cpus": 1, **fields})


def context(target: RayTarget, tmp_path) -> TargetContext:
    return TargetContext(TargetSettings(targets=[target]), tmp_path / "known_hosts")


def ray_status(run_dir) -> str:
    """The status of the run's Ray job, asked through the job control the app's stop and liveness use."""
    job = control_of(read_run_info(run_dir)).job()
    return job.status if job else ""


def wait_ray(run_dir, statuses: tuple[str, ...], timeout: float = 60) -> str:
    return wait_for(lambda: ray_status(run_dir) if ray_status(run_dir) in statuses else "", timeout,
                    f"Ray to report {statuses} for {run_dir.name}")


def test_a_tiny_training_through_ray_follows_the_run_folder_contract(ray_head, ray_workspace, tmp_path):
    target = ray_target(ray_head.address)
    ctx = context(target, tmp_path)
    outcome = launch(target, ray_workspace.config("done"), ctx, workspace=ray_workspace.root)
    assert outcome.started, outcome.report.summary()
    checks = {c.name: c for c in outcome.report.checks}
    assert checks["reachable"].status == OK and checks["resources"].status == OK

    run_dir = ray_workspace.root / "runs" / "done"
    info = read_run_info(run_dir)
    assert info.target_kind == "ray" and info.launch == RAY_LAUNCH and info.pid == 0
    assert info.extra["ray_address"] == ray_head.address and info.extra["ray_job_id"].startswith("done-")
    assert info.command[-2:] == ["--config", str(run_dir / "config.yaml")]
    # Ray's own client sees the job the app submitted over plain HTTP.
    from ray.job_submission import JobSubmissionClient
    details = JobSubmissionClient(ray_head.address).get_job_info(info.extra["ray_job_id"])
    assert details.metadata["lora_studio_run"] == "done" and "-m trainer train --config" in details.entrypoint

    status = wait_state(run_dir, ("completed",), timeout=180)
    assert status["step"] == 4 and status["error"] is None
    assert (run_dir / "lora.safetensors").stat().st_size > 0
    assert wait_ray(run_dir, (SUCCEEDED,)) == SUCCEEDED
    assert not is_running(run_dir, ctx)
    listed = {r.path: r for r in list_runs_seen(ray_workspace.root)}
    assert listed[run_dir].state == "completed" and listed[run_dir].target == "ray-lab"
    # The output is in train.log once (the trainer sees its stdout is that file) and in Ray's job log.
    log = (run_dir / "train.log").read_text(encoding="utf-8")
    assert log.count("run completed at step 4") == 1, tail_log(run_dir)
    ray_log = RayJobsClient(ray_head.address).logs(info.extra["ray_job_id"])
    assert "run completed at step 4" in ray_log


def test_stop_leaves_a_checkpoint_then_a_resume_stops_through_rays_own_stop(ray_head, ray_workspace, tmp_path):
    target = ray_target(ray_head.address)
    ctx = context(target, tmp_path)
    config = ray_workspace.config("long", max_train_steps=100000)
    assert launch(target, config, ctx, workspace=ray_workspace.root).started
    run_dir = ray_workspace.root / "runs" / "long"
    wait_state(run_dir, ("training",), timeout=180, min_step=2)
    assert is_running(run_dir, ctx)

    stages: list[str] = []
    result = stop(run_dir, ctx, grace_s=120, poll_s=0.2, on_stage=stages.append)
    assert result.stopped and stages == ["stop_file"] and result.state == "stopped", result
    assert list_checkpoints(run_dir), "the STOP file's stop saves a checkpoint"
    assert wait_ray(run_dir, (SUCCEEDED,)) == SUCCEEDED  # the trainer exited 0 after its checkpoint

    # Started again on Ray (a new job: Ray refuses a submission id twice), it resumes; Stop now
    # skips the STOP file and goes through Ray's stop (SIGTERM to the job, then a kill).
    first_job = read_run_info(run_dir).extra["ray_job_id"]
    steps_before = read_status(run_dir)["step"]
    assert launch(target, config, ctx, workspace=ray_workspace.root).started
    assert read_run_info(run_dir).extra["ray_job_id"] != first_job
    wait_state(run_dir, ("training",), timeout=180, min_step=steps_before + 1)
    stages.clear()
    result = stop_now(run_dir, ctx, kill_after_s=30, poll_s=0.2, on_stage=stages.append)
    assert result.stopped and stages == ["terminate"] and not (run_dir / "STOP").exists(), result
    assert wait_ray(run_dir, (STOPPED,)) == STOPPED
    assert read_status(run_dir)["state"] == "stopped" and list_checkpoints(run_dir)
    assert {r.path: r for r in list_runs_seen(ray_workspace.root)}[run_dir].state == "stopped"


def test_a_run_waiting_in_rays_queue_shows_queued_and_a_stop_cancels_it(ray_head, ray_workspace, tmp_path):
    target = ray_target(ray_head.address, num_gpus=1)
    ctx = context(target, tmp_path)
    prepared, report = preflight(target, ray_workspace.config("waits"), ctx, workspace=ray_workspace.root)
    resources = next(c for c in report.checks if c.name == "resources")
    assert not report.ok and resources.status == ERROR, report.summary()
    assert "has 1 GPU and 1 CPU" in resources.message and "at most 0 GPUs" in resources.message
    assert ray_head.address in resources.message and resources.hint

    # Started anyway (the preflight said why it would wait), Ray holds it: no status.json, "queued".
    start(target, prepared, ctx)
    run_dir = prepared.local_run_dir
    assert wait_ray(run_dir, (PENDING,)) == PENDING
    [listed] = [r for r in list_runs_seen(ray_workspace.root) if r.path == run_dir]
    assert listed.state == QUEUED and "waiting for resources" in listed.ray_job.message
    assert is_running(run_dir, ctx)  # Ray still holds it
    # The Fleet view lists it on the Ray target, as Ray's.
    load = next(load for load in fleet_snapshot(ray_workspace.root, [target], "me@desk").loads
                if load.name == target.name)
    assert [(r.name, r.state) for r in load.running if r.path == run_dir] == [("waits", QUEUED)]

    result = stop(run_dir, ctx, grace_s=60, poll_s=0.2)
    assert result.stopped and result.stage == "stop_file" and result.state == "stopped", result
    assert (run_dir / "STOP").exists()  # the entrypoint reads it and never starts the trainer
    assert summarize_run(run_dir).state == "stopped"


def test_a_ray_target_that_is_down_is_named_at_preflight_fast(ray_workspace, tmp_path):
    address = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    target = ray_target(address)
    began = time.monotonic()
    _, report = preflight(target, ray_workspace.config("down"), context(target, tmp_path),
                          workspace=ray_workspace.root)
    assert time.monotonic() - began < 5
    reachable = next(c for c in report.checks if c.name == "reachable")
    assert not report.ok and reachable.status == ERROR
    assert address in reachable.message and "Traceback" not in reachable.message and "\n" not in reachable.message
    assert "ray status" in reachable.hint and "8265" in reachable.hint

    # Something that accepts connections but never answers: the same, within the preflight's timeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        mute = ray_target(f"127.0.0.1:{silent.getsockname()[1]}")
        began = time.monotonic()
        _, report = preflight(mute, ray_workspace.config("mute"), context(mute, tmp_path), workspace=ray_workspace.root)
        assert time.monotonic() - began < 8 and not report.ok
        assert "does not answer" in next(c for c in report.checks if c.name == "reachable").message

    # A start without preflight says the same, and writes no run.json.
    from lora_studio.targets.prepare import prepare_run
    prepared = prepare_run(ray_workspace.config("down"), target)
    with pytest.raises(ConnectionFailed, match=address):
        start(target, prepared, context(target, tmp_path))
    assert read_run_info(prepared.local_run_dir) is None
