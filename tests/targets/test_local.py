"""The local launcher: detached start, run.json, liveness, the staged stop, and a real tiny training."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import pytest

from lora_studio.targets import (LocalTarget, TargetContext, TargetError, TargetSettings, is_running, launch, preflight,
                                 stop, stop_now)
from lora_studio.targets.api import start as start_prepared
from lora_studio.targets.prepare import prepare_run
from lora_studio.targets.runinfo import read_run_info
from lora_studio.targets.stop import STAGES
from trainer.rundir import read_status

from .helpers import copy_workspace, pid_alive, wait_for, wait_state, write_config

FAKE = Path(__file__).with_name("fake_trainer.py")


def fake_target() -> LocalTarget:
    return LocalTarget(python=shlex.join([sys.executable, str(FAKE)]))


@pytest.fixture
def fake_run(tmp_path, monkeypatch, reap_trainers):
    """Start the fake trainer detached in a run folder; returns (context, run folder, pid)."""
    def start(mode: str):
        monkeypatch.setenv("FAKE_TRAINER_MODE", mode)
        config = tmp_path / "configs" / "c.yaml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text("train_data_dir: ../data\nbase_model: ../m.safetensors\noutput_dir: ../runs/fake\n")
        target = fake_target()
        ctx = TargetContext(TargetSettings(targets=[target]), tmp_path / "known_hosts")
        info = start_prepared(target, prepare_run(config, target), ctx)
        reap_trainers.append(info.pid)
        run_dir = tmp_path / "runs" / "fake"
        wait_state(run_dir, ("training",), timeout=20, min_step=2)
        return ctx, run_dir, info.pid
    return start


def test_launch_returns_at_once_and_writes_run_json(fake_run):
    ctx, run_dir, pid = fake_run("obey")
    info = read_run_info(run_dir)
    assert info.pid == pid and info.target_kind == "local" and info.launch == "subprocess"
    assert info.command[-2:] == ["--config", str(run_dir / "config.yaml")]
    assert info.app_version and info.started_at > 0
    # Detached: a session of its own, so the app's terminal closing does not hang it up.
    assert os.getsid(pid) == pid
    assert is_running(run_dir, ctx)
    assert "fake trainer" in (run_dir / "train.log").read_text()


@pytest.mark.parametrize("mode, stage", [("obey", "stop_file"), ("ignore_stop", "terminate"), ("stubborn", "kill")])
def test_stop_goes_through_the_stages(fake_run, mode, stage):
    ctx, run_dir, pid = fake_run(mode)
    stages: list[str] = []
    result = stop(run_dir, ctx, grace_s=1.5, kill_after_s=1.5, poll_s=0.1, on_stage=stages.append)
    assert result.stopped and result.stage == stage, result
    assert stages == list(STAGES[: STAGES.index(stage) + 1])
    wait_for(lambda: not pid_alive(pid), 5, "the fake trainer to be gone")
    assert not is_running(run_dir, ctx)
    # A killed trainer cannot write its final state: the stop does, so the run is not taken for lost.
    assert result.state == "stopped" and read_status(run_dir)["state"] == "stopped"


@pytest.mark.parametrize("mode, stage", [("ignore_stop", "terminate"), ("stubborn", "kill")])
def test_stop_now_signals_at_once_instead_of_waiting_for_the_step(fake_run, mode, stage):
    ctx, run_dir, pid = fake_run(mode)
    stages: list[str] = []
    result = stop_now(run_dir, ctx, kill_after_s=1.5, poll_s=0.1, on_stage=stages.append)
    assert result.stopped and result.stage == stage, result
    assert stages == list(STAGES[1: STAGES.index(stage) + 1]) and not (run_dir / "STOP").exists()
    wait_for(lambda: not pid_alive(pid), 5, "the fake trainer to be gone")
    assert result.state == "stopped" and read_status(run_dir)["state"] == "stopped"
    # Gone already: not signalled again (its pid may be another program's by now).
    again = stop_now(run_dir, ctx, poll_s=0.1, on_stage=stages.append)
    assert again.stopped and again.message == "the trainer had already stopped"
    assert stages == list(STAGES[1: STAGES.index(stage) + 1])


def test_stop_now_needs_a_way_to_signal_the_trainer(fake_run):
    _, run_dir, _ = fake_run("obey")
    with pytest.raises(TargetError, match="no connection"):
        stop_now(run_dir, None)
    assert stop(run_dir, None, grace_s=10, poll_s=0.1).stopped  # the STOP file still works


def test_stop_without_a_connection_uses_the_stop_file_only(fake_run):
    _, run_dir, pid = fake_run("obey")
    result = stop(run_dir, None, grace_s=10, poll_s=0.1)
    assert result.stopped and result.stage == "stop_file" and result.state == "stopped"


def test_a_busy_target_is_refused_before_anything_else(fake_run, tmp_path):
    ctx, run_dir, _ = fake_run("obey")
    config = tmp_path / "configs" / "second.yaml"
    config.write_text("train_data_dir: ../data\nbase_model: ../m.safetensors\noutput_dir: ../runs/second\n")
    refused = launch(ctx.settings.targets[0], config, ctx, workspace=tmp_path)
    assert not refused.started
    [check] = refused.report.checks
    assert check.name == "busy" and check.status == "error" and "fake" in check.message and "allow more" in check.hint
    # Starting the same run folder again while it runs is refused too, on any target.
    again = launch(LocalTarget(name="other"), tmp_path / "configs" / "c.yaml", ctx)
    assert not again.started and "is still training" in again.report.checks[0].message
    stop(run_dir, ctx, grace_s=10, poll_s=0.1)


@pytest.mark.slow
def test_preflight_on_this_computer_with_the_real_trainer(demo_workspace, tmp_path):
    workspace = copy_workspace(demo_workspace, tmp_path / "ws")
    config = write_config(workspace, "local", "runs/local", max_train_steps=3)
    ctx = TargetContext(TargetSettings(), tmp_path / "known_hosts")
    prepared, report = preflight(LocalTarget(), config, ctx, workspace=workspace)
    assert report.ok, report.summary()
    statuses = {c.name: c.status for c in report.checks}
    assert statuses["trainer"] == statuses["config"] == statuses["shared_files"] == statuses["output_dir"] == "ok"
    assert statuses["gpu"] in ("ok", "warning")  # a warning on CPU-only machines, never an error
    assert report.doctor["trainer_version"] and prepared.target_config == str(workspace / "runs/local/config.yaml")
