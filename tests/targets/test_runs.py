"""Re-attach: the runs under a workspace and their states, from files only."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from lora_studio.targets import RunInfo, list_runs
from lora_studio.targets.runinfo import read_run_info, start_moment, write_run_info


def status(folder: Path, **fields) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    base = {"state": "training", "step": 5, "total_steps": 10, "heartbeat": time.time(), "pid": os.getpid(),
            "host": "gpu-vm-01", "started_at": time.time() - 100}
    (folder / "status.json").write_text(json.dumps({**base, **fields}))


def info(folder: Path, target: str = "gpu-vm-01", started_at: float | None = None) -> RunInfo:
    record = RunInfo("ssh", target, "10.0.0.5", 4242, ["python3", "-m", "trainer", "train", "--config", "c.yaml"],
                     # The launcher writes run.json before the trainer writes its first status.
                     started_at or time.time() - 200, "0.1.0", "ssh", "/data/lora/runs/x", "/data/lora/runs/x/config.yaml")
    folder.mkdir(parents=True, exist_ok=True)
    write_run_info(folder, record)
    return record


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_states_from_files(tmp_path):
    ws = tmp_path
    now = time.time()
    status(ws / "runs" / "live")
    info(ws / "runs" / "live")
    status(ws / "runs" / "remote-stale", heartbeat=now - 600)                       # no heartbeat for 10 min: lost
    status(ws / "runs" / "local-dead", heartbeat=now - 600, host=socket.gethostname(), pid=dead_pid())
    status(ws / "runs" / "local-hung", heartbeat=now - 600, host=socket.gethostname(), pid=os.getpid())
    status(ws / "runs" / "done", state="completed", step=10, heartbeat=now - 86400)
    status(ws / "runs" / "bad", state="failed", error={"message": "CUDA out of memory", "hint": "lower batch_size"})
    info(ws / "runs" / "just-launched", started_at=time.time())
    info(ws / "runs" / "never-started", started_at=now - 3600)
    status(ws / "deep" / "a" / "b" / "c" / "run")
    # Not runs, or not looked into: a dataset, a run's checkpoints.
    (ws / "datasets" / "cats").mkdir(parents=True)
    status(ws / "runs" / "done" / "checkpoints" / "step-00000010")
    states = {r.name: r.state for r in list_runs(ws)}
    assert states == {"live": "training", "remote-stale": "lost", "local-dead": "lost", "local-hung": "training",
                      "done": "completed", "bad": "failed", "just-launched": "launched",
                      "never-started": "not_started", "run": "training"}
    [live] = [r for r in list_runs(ws) if r.name == "live"]
    assert (live.target, live.step, live.total_steps, live.host) == ("gpu-vm-01", 5, 10, "gpu-vm-01")
    [bad] = [r for r in list_runs(ws) if r.name == "bad"]
    assert bad.error["hint"] == "lower batch_size"


def test_only_training_runs_offer_resume(tmp_path):
    """An auto-caption job is listed with the runs, but has no checkpoint to resume from."""
    now = time.time()
    status(tmp_path / "runs" / "train-stopped", state="stopped")
    status(tmp_path / "runs" / "label-stopped", state="stopped", kind="label")
    status(tmp_path / "runs" / "label-lost", heartbeat=now - 600, kind="label")
    status(tmp_path / "runs" / "train-live")
    runs = {r.name: r for r in list_runs(tmp_path)}
    assert {name: (r.kind, r.resumable) for name, r in runs.items()} == {
        "train-stopped": ("train", True), "label-stopped": ("label", False),
        "label-lost": ("label", False), "train-live": ("train", False)}
    assert runs["label-lost"].state == "lost"


def test_a_run_started_again_is_launched_until_its_new_trainer_writes(tmp_path):
    run = tmp_path / "runs" / "recovered"
    status(run, heartbeat=time.time() - 30, host=socket.gethostname(), pid=dead_pid())  # the old trainer died
    assert [r.state for r in list_runs(tmp_path)] == ["lost"]
    info(run, started_at=time.time() - 1)  # a recovery launched a new trainer a second ago
    assert [r.state for r in list_runs(tmp_path)] == ["launched"]


def test_a_relaunch_is_told_by_the_heartbeat_it_saw_whatever_the_clocks(tmp_path):
    """The trainer's machine clock may differ from the desk's: the launch records the heartbeat it
    saw, and the old status counts as the old trainer's exactly while that heartbeat is unchanged."""
    ahead = tmp_path / "runs" / "vm-clock-ahead"
    status(ahead, state="stopped", heartbeat=time.time() + 600, pid=4100)  # stopped, on a VM 10 min ahead
    moment = start_moment(ahead)   # Resume, a moment later by the desk's clock
    relaunch(ahead, moment)
    assert _state(tmp_path, "vm-clock-ahead") == "launched"  # it read "stopped": launched before its heartbeat
    status(ahead, state="training", heartbeat=time.time() + 605, pid=4242)  # the new trainer writes
    assert _state(tmp_path, "vm-clock-ahead") == "training"

    behind = tmp_path / "runs" / "vm-clock-behind"
    moment = start_moment(behind)  # a first start: no status.json yet
    assert moment.heartbeat_before == 0.0
    relaunch(behind, moment)
    assert _state(tmp_path, "vm-clock-behind") == "launched"
    # Its first status, from a machine an hour behind and another pid (torchrun's worker) than the launcher's.
    first_beat = time.time() - 3600
    status(behind, heartbeat=first_beat, pid=5000)
    # The new trainer's status (it read "launched" for the next minute), an hour old at first sight
    # (runs.py: lost until a later beat shows that it moves on), then training.
    assert _state(tmp_path, "vm-clock-behind") == "lost"
    status(behind, heartbeat=first_beat + 5, pid=5000)
    assert _state(tmp_path, "vm-clock-behind") == "training"


def relaunch(folder: Path, moment) -> None:
    """The run.json a launch at ``moment`` writes."""
    write_run_info(folder, RunInfo("ssh", "gpu-vm-01", "10.0.0.5", 4242, ["python3"], moment.at, "0.1.0", "ssh",
                                   str(folder), str(folder / "config.yaml"), heartbeat_before=moment.heartbeat_before))


def _state(workspace: Path, name: str) -> str:
    return next(r.state for r in list_runs(workspace) if r.name == name)


def test_run_json_round_trip_ignores_newer_fields(tmp_path):
    record = info(tmp_path)
    assert read_run_info(tmp_path) == record
    data = json.loads((tmp_path / "run.json").read_text())
    data["from_the_future"] = 1
    (tmp_path / "run.json").write_text(json.dumps(data))
    assert read_run_info(tmp_path) == record
    (tmp_path / "run.json").write_text("{half")
    assert read_run_info(tmp_path) is None


def test_a_remote_run_whose_clock_is_behind_is_not_lost_while_its_heartbeat_moves_on(tmp_path):
    """Its machine's clock is an hour behind this desk's, so every heartbeat reads an hour old."""
    from lora_studio.monitor.run_details import details_text

    run = tmp_path / "runs" / "slow-clock"
    behind = time.time() - 3600
    status(run, heartbeat=behind)
    assert [r.state for r in list_runs(tmp_path)] == ["lost"]  # one reading: only the clocks can tell
    status(run, heartbeat=behind + 5)  # its next beat
    [summary] = list_runs(tmp_path)
    assert summary.state == "training"
    details = details_text(summary, {"epoch": 2, "total_epochs": 4}, None, None)
    assert details.startswith("epoch 2 of 4 · ")
    assert "heartbeat 0 s ago (its machine's clock is 60 min behind this computer's)" in details  # by the desk's clock
    assert [r.state for r in list_runs(tmp_path, now=time.time() + 61)] == ["lost"]  # no beat for a minute
    status(run, heartbeat=behind + 10)
    assert [r.state for r in list_runs(tmp_path)] == ["training"]
    status(run, heartbeat=behind - 100)  # a heartbeat that goes back is no beat of that trainer
    assert [r.state for r in list_runs(tmp_path)] == ["lost"]


def test_a_remote_run_whose_clock_is_ahead_is_lost_a_minute_after_its_last_beat(tmp_path):
    """Its machine's clock is ten minutes ahead: by the clocks its last heartbeat stays "in the future" for
    ten minutes after the trainer died; by the desk's own clock it is stale a minute after the desk saw it."""
    from lora_studio.monitor.run_details import details_text

    run = tmp_path / "runs" / "fast-clock"
    ahead = time.time() + 600
    status(run, heartbeat=ahead)
    [first] = list_runs(tmp_path)
    assert first.state == "training"
    assert "heartbeat just now (its machine's clock is 10 min ahead of this computer's)" in \
        details_text(first, {}, None, None)
    status(run, heartbeat=ahead + 5)  # its last beat, which the desk sees now
    assert [r.state for r in list_runs(tmp_path)] == ["training"]
    assert [r.state for r in list_runs(tmp_path, now=time.time() + 30)] == ["training"]
    [later] = list_runs(tmp_path, now=time.time() + 61)
    assert later.state == "lost" and later.heartbeat_age_s > 60
