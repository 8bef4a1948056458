"""The Ray target's parts that need no Ray head: the address, the saved target, the entrypoint's
shell line (run for real with /bin/sh and hostile folder names), and how Ray's job status and the
run folder combine into the state the app shows."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from lora_studio.targets import commands
from lora_studio.targets.errors import TargetConfigError
from lora_studio.targets.launch import TrainerJob, map_job
from lora_studio.targets.model import (RAY_RUNS_AT_ONCE, RayTarget, TargetSettings, settings_from_json,
                                       settings_to_json)
from lora_studio.targets.pathmap import PathMapping
from lora_studio.targets.ray_client import FAILED, PENDING, RUNNING, STOPPED, SUCCEEDED, RayJob, normalize_address
from lora_studio.targets.ray_jobs import EXIT_CANCELLED, entrypoint, submission_id
from lora_studio.targets.ray_state import QUEUED, combine
from lora_studio.targets.runs import RunSummary

HOSTILE = "a b; touch PWNED $(touch PWNED2) 'q\" ü"
FAKE_PYTHON = r"""import os, sys
print("fake trainer", *(f"arg:{a}" for a in sys.argv[1:]), sep="\n", flush=True)
print("to stderr", file=sys.stderr, flush=True)
sys.exit(int(os.environ.get("FAKE_EXIT", "3")))
"""


@pytest.mark.parametrize("typed, address", [
    ("ray-head", "http://ray-head:8265"), ("ray-head:9000", "http://ray-head:9000"),
    ("http://10.0.0.5:8265/", "http://10.0.0.5:8265"), ("https://ray.example", "https://ray.example:443"),
    ("  http://[::1]:8265 ", "http://[::1]:8265"),
])
def test_addresses_are_normalized(typed, address):
    assert normalize_address(typed) == address


@pytest.mark.parametrize("typed, words", [("", "no address"), ("ray://head:10001", "http://head:8265"),
                                          ("ftp://head", "not a Ray dashboard"), ("head:99999", "no valid port")])
def test_bad_addresses_say_what_to_enter(typed, words):
    with pytest.raises(TargetConfigError) as caught:
        normalize_address(typed)
    assert words in str(caught.value)


def test_a_ray_target_is_saved_and_checked():
    target = RayTarget(name="cluster", address="head", python="/opt/venv/bin/python", num_gpus=2, num_cpus=8,
                       runtime_env='{"env_vars": {"HF_HOME": "/data/hf"}}',
                       mappings=(PathMapping("/mnt/share", "/data"),))
    assert target.max_jobs == RAY_RUNS_AT_ONCE and target.runtime_env_dict() == {"env_vars": {"HF_HOME": "/data/hf"}}
    again = settings_from_json(settings_to_json(TargetSettings(targets=[target])))
    assert again.targets == [target]
    with pytest.raises(TargetConfigError, match="not valid JSON"):
        RayTarget(name="c", address="head", runtime_env="{nope")
    with pytest.raises(TargetConfigError, match="JSON object"):
        RayTarget(name="c", address="head", runtime_env="[1]")
    with pytest.raises(TargetConfigError, match="0 or more"):
        RayTarget(name="c", address="head", num_gpus=-1)


def test_submission_ids_are_safe_and_new_for_each_start(tmp_path):
    first, second = submission_id(tmp_path / HOSTILE, 0), submission_id(tmp_path / HOSTILE, 0)
    assert first != second and first.startswith("a-b-touch-PWNED-touch-PWNED2-q")
    assert all(c.isalnum() or c in "-_." for c in first)


def _entrypoint_in(run_dir: Path, tmp_path: Path) -> str:
    fake = tmp_path / "fake python.py"
    fake.write_text(FAKE_PYTHON, encoding="utf-8")
    target = RayTarget(name="r", address="head", python=shlex.join([sys.executable, str(fake)]))
    return entrypoint(target, map_job(TrainerJob(("train", "--config", str(run_dir / "config.yaml")), run_dir,
                                                 {"--config": "the run's config"}), target))


def _run(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    # What Ray does with an entrypoint: /bin/sh -c, in some folder of its own, output to the job log.
    return subprocess.run(["/bin/sh", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", **env})


def test_the_entrypoint_runs_the_trainer_in_the_run_folder_with_its_exit_code(tmp_path):
    run_dir = tmp_path / "runs" / HOSTILE
    run_dir.mkdir(parents=True)
    elsewhere = tmp_path / "ray-cwd"
    elsewhere.mkdir()
    done = _run(_entrypoint_in(run_dir, tmp_path), elsewhere)
    assert done.returncode == 3, done.stderr
    log = (run_dir / "train.log").read_text(encoding="utf-8")
    assert log.count("fake trainer") == 1 and "to stderr" in log
    assert f"arg:{run_dir / 'config.yaml'}" in log.splitlines()  # one argument, unchanged
    assert "fake trainer" in done.stdout and "to stderr" in done.stdout  # Ray's job log gets a copy
    assert not list(tmp_path.rglob("PWNED*")), "a folder name ran as a command"

    assert _run(_entrypoint_in(run_dir, tmp_path), elsewhere, FAKE_EXIT="0").returncode == 0
    (run_dir / "STOP").write_text("stop\n")
    cancelled = _run(_entrypoint_in(run_dir, tmp_path), elsewhere)
    assert cancelled.returncode == EXIT_CANCELLED and "not started" in cancelled.stdout
    assert (run_dir / "train.log").read_text(encoding="utf-8").count("fake trainer") == 2  # not run again
    missing = _run(_entrypoint_in(tmp_path / "not on this node", tmp_path), elsewhere)
    assert missing.returncode == commands.EXIT_NO_RUN_DIR


def _summary(state: str, error: dict | None = None) -> RunSummary:
    return RunSummary(Path("/w/runs/r"), "r", state, 0, None, None, "ray", "", None, None, error, None)


@pytest.mark.parametrize("folder, ray, exit_code, shown", [
    ("launched", PENDING, None, QUEUED), ("not_started", PENDING, None, QUEUED),   # waits for a GPU, maybe for hours
    ("not_started", RUNNING, None, "launched"), ("training", RUNNING, None, "training"),
    ("lost", RUNNING, None, "training"),          # a stale heartbeat, but Ray runs it: not restarted beside it
    ("completed", SUCCEEDED, 0, "completed"), ("stopped", STOPPED, None, "stopped"),  # the trainer's word wins
    ("training", FAILED, -9, "lost"),             # killed with its node: resumable
    ("training", STOPPED, None, "stopped"),       # stopped from Ray's dashboard
    ("launched", FAILED, 127, "failed"),          # no such python on the node
    ("not_started", FAILED, EXIT_CANCELLED, "stopped"),   # cancelled while it waited
])
def test_ray_and_the_run_folder_combine(folder, ray, exit_code, shown):
    job = RayJob("r-1", ray, "Job entrypoint command failed with exit code 127, last available logs (...):\nsh: x",
                 exit_code=exit_code)
    combined = combine(_summary(folder), job)
    assert combined.state == shown and combined.ray_job is job
    if shown == "failed":
        assert combined.error["message"] == "Ray reports the job failed: Job entrypoint command failed with exit code 127"
        assert "ray job logs r-1" in combined.error["hint"]
    assert combine(_summary(folder), None).state == folder  # Ray not asked or unreachable: the folder's word


def test_failures_before_the_trainer_say_what_to_do():
    unseen = combine(_summary("launched"), RayJob("r", FAILED, "", exit_code=commands.EXIT_NO_RUN_DIR))
    assert "does not see the run folder" in unseen.error["message"] and "path mappings" in unseen.error["hint"]
    gave_up = combine(_summary("not_started"), RayJob("r", FAILED, "...", "JOB_SUPERVISOR_ACTOR_START_TIMEOUT"))
    assert gave_up.state == "failed" and "RAY_JOB_START_TIMEOUT_SECONDS" in gave_up.error["hint"]


def test_the_app_never_loads_ray_or_torch_for_a_ray_target():
    code = ("import sys; import lora_studio.targets.api, lora_studio.targets.ray_jobs, lora_studio.targets.ray_state, "
            "lora_studio.targets.ray_preflight; "
            "print(json.dumps(sorted(m for m in ('ray', 'torch') if m in sys.modules)))")
    done = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
