"""Preflights made ahead: the run that goes next to a target whose job ends soon is checked while that
job ends, under the run's claim; its start then only launches, unless something changed since."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest

from lora_studio.fleet import Needs, StartsAhead, ahead_preparer, dispatch, enqueue, fleet_snapshot, queued_launcher
from lora_studio.fleet.ahead import Preparer, ends_soon
from lora_studio.fleet.claim import read_claim
from lora_studio.fleet.queue import read_entry
from lora_studio.targets import LaunchOutcome, LocalTarget, TargetContext, TargetSettings
from lora_studio.targets.preflight import OK, PreflightReport
from lora_studio.targets.prepare import prepare_run
from lora_studio.targets.runs import summarize_run

from .helpers import RecordingStart, finish, gpu_box, make_workspace, pretend_running, write_config


@pytest.fixture
def workspace(tmp_path) -> Path:
    return make_workspace(tmp_path / "share")


def _queue(workspace: Path, *names: str, needs: Needs = Needs()) -> None:
    start = time.time()
    for offset, name in enumerate(names):
        enqueue(write_config(workspace, name), workspace, needs, "desk-1", now=start + offset)


def just_started(run: Path, target: str) -> Path:
    """A run on ``target`` at step 1 of 10000 after a minute: it ends in days, not soon."""
    pretend_running(run, target)
    status = json.loads((run / "status.json").read_text(encoding="utf-8"))
    status.update(step=1, total_steps=10_000, started_at=time.time() - 60)
    (run / "status.json").write_text(json.dumps(status), encoding="utf-8")
    return run


class RecordingCheck:
    """Stands in for the remote part of a preflight: the config is really mapped and written to the
    run folder (as the preflight does), the checks on the target all pass."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace
        self.calls: list[tuple[str, str]] = []
        self.seen_while_checking: list[str] = []

    def __call__(self, entry, target):
        self.calls.append((entry.name, target.name))
        row = next(r for r in fleet_snapshot(self.workspace, [target], "desk-2").queue if r.entry.name == entry.name)
        self.seen_while_checking.append(row.status)
        report = PreflightReport(target.name, doctor={"gpus": []})
        report.add("config", OK, "config valid (3 images)")
        return prepare_run(entry.config, target), report


class RecordingLaunch:
    """Stands in for the launch: records whether it got a preflight made ahead; the run then runs there."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []

    def __call__(self, target, config, ctx, *, workspace=None, checked=None) -> LaunchOutcome:
        run_dir = Path(config).parent
        self.calls.append((run_dir.name, checked is not None))
        pretend_running(run_dir, target.name)
        return LaunchOutcome(checked[1] if checked else PreflightReport(target.name), info=object())


def test_only_a_job_with_a_known_pace_that_ends_within_the_window_ends_soon(workspace):
    now = time.time()
    ending = summarize_run(pretend_running(workspace / "runs" / "ending", "gpu-01"))  # step 3 of 10 just now
    long = summarize_run(just_started(workspace / "runs" / "long", "gpu-01"))
    assert ends_soon([ending], now + 1) and not ends_soon([long], now)
    assert ends_soon([long, ending], now + 1)  # one slot frees up: that is enough
    assert not ends_soon([ending], now + 1, window_s=0.0)


def test_the_next_run_of_a_target_whose_job_ends_is_checked_ahead_once_and_its_start_only_launches(workspace, tmp_path):
    busy = pretend_running(workspace / "runs" / "portrait", "gpu-01")   # ends soon
    just_started(workspace / "runs" / "landscape", "gpu-02")            # ends in days
    targets = [gpu_box("gpu-01"), gpu_box("gpu-02")]
    _queue(workspace, "cats", "dogs")
    ahead, check = StartsAhead(), RecordingCheck(workspace)
    prepare, start = Preparer(ahead, check), RecordingStart()
    assert dispatch(workspace, targets, start, "desk-1", prepare=prepare) == []  # nothing is free: nothing starts
    assert check.calls == [("cats", "gpu-01")]  # gpu-02's job does not end soon: nothing is checked for it
    # While it was checked, the run's claim said so, to every desk; afterwards the claim is gone.
    assert check.seen_while_checking == ["being checked for gpu-01 by desk-1"]
    assert read_claim(workspace / "runs" / "cats") is None
    assert "gpu-01" in (workspace / "runs" / "cats" / "config.yaml").read_text(encoding="utf-8")
    dispatch(workspace, targets, start, "desk-1", prepare=prepare)
    assert check.calls == [("cats", "gpu-01")] and ahead.waiting()  # made once, kept for the start
    finish(busy)
    launch = RecordingLaunch()
    starter = queued_launcher(TargetContext(TargetSettings(), tmp_path / "known_hosts"), workspace,
                              launch_fn=launch, ahead=ahead)
    [outcome] = dispatch(workspace, targets, starter, "desk-1", prepare=prepare)
    assert (outcome.run_dir.name, outcome.target, outcome.kind) == ("cats", "gpu-01", "started")
    assert launch.calls == [("cats", True)] and not ahead.waiting()  # the check made ahead stood for the preflight


def test_a_run_that_a_free_target_takes_is_no_ones_next_run_and_a_run_kept_off_a_target_is_not_checked_for_it(workspace):
    pretend_running(workspace / "runs" / "portrait", "gpu-01")  # ends soon
    targets = [gpu_box("gpu-01"), gpu_box("gpu-02")]
    _queue(workspace, "cats")                                   # any target: gpu-02 is free now
    _queue(workspace, "dogs", needs=Needs(targets=("gpu-02",)))  # never gpu-01
    _queue(workspace, "fox")                                    # next in line for gpu-01
    check = RecordingCheck(workspace)
    start = RecordingStart()
    dispatch(workspace, targets, start, "desk-1", prepare=Preparer(StartsAhead(), check))
    assert start.calls == [("cats", "gpu-02")] and check.calls == [("fox", "gpu-01")]


def test_a_start_checks_again_when_the_config_or_the_target_changed_or_the_check_is_old(workspace, tmp_path):
    busy = pretend_running(workspace / "runs" / "portrait", "gpu-01")
    targets = [gpu_box("gpu-01")]
    _queue(workspace, "cats", "dogs")
    ahead = StartsAhead(fresh_s=3600)
    prepare = Preparer(ahead, RecordingCheck(workspace))
    dispatch(workspace, targets, RecordingStart(), "desk-1", prepare=prepare)
    queued = workspace / "runs" / "cats" / "queued-config.yaml"
    queued.write_text(queued.read_text(encoding="utf-8") + "learning_rate: 0.002\n", encoding="utf-8")  # edited since
    finish(busy)
    launch = RecordingLaunch()
    starter = queued_launcher(TargetContext(TargetSettings(), tmp_path / "known_hosts"), workspace,
                              launch_fn=launch, ahead=ahead)
    dispatch(workspace, targets, starter, "desk-1", prepare=prepare)
    assert launch.calls == [("cats", False)]  # its own full preflight
    dispatch(workspace, targets, starter, "desk-1", prepare=prepare)  # cats has a pace now: dogs is checked ahead
    assert ahead.waiting()
    finish(workspace / "runs" / "cats")
    moved = [replace(targets[0], host="gpu-01b.lab.example")]  # then gpu-01's settings changed
    dispatch(workspace, moved, starter, "desk-1")
    assert launch.calls[1:] == [("dogs", False)]
    # And a check older than the store's freshness is not used.
    old = StartsAhead(fresh_s=0.0)
    _queue(workspace, "emu")
    dispatch(workspace, targets, RecordingStart(), "desk-1", prepare=Preparer(old, RecordingCheck(workspace)))
    assert not old.waiting()


def test_a_real_preflight_made_ahead_on_this_computer_starts_the_trainer_when_the_slot_frees(tmp_path, tiny_model):
    """The real preflight (doctor, paths, validate) ahead of the real launch of a real trainer run."""
    workspace = make_workspace(tmp_path / "share")
    model = workspace / "models" / "tiny-sd" / "tiny-sd-v1.safetensors"
    model.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(tiny_model / "tiny-sd-v1.safetensors", model)
    busy = pretend_running(workspace / "runs" / "portrait", "This computer")
    enqueue(write_config(workspace, "cats", output_name="cats", max_train_steps=1, sample_every_n_steps=0, save_steps=0,
                         batch_size=1),
            workspace, Needs(), "desk-1")
    target, ctx = LocalTarget(), TargetContext(TargetSettings(), tmp_path / "known_hosts")
    ahead = StartsAhead()
    prepare = ahead_preparer(ctx, workspace, ahead)
    starter = queued_launcher(ctx, workspace, ahead=ahead)
    assert dispatch(workspace, [target], starter, "desk-1", prepare=prepare) == []
    assert ahead.waiting(), "the preflight made ahead did not pass"
    finish(busy)
    [outcome] = dispatch(workspace, [target], starter, "desk-1", prepare=prepare)
    assert outcome.kind == "started" and not ahead.waiting()
    run = workspace / "runs" / "cats"
    deadline = time.monotonic() + 240
    while summarize_run(run).state not in ("completed", "failed"):
        assert time.monotonic() < deadline, (run / "train.log").read_text(encoding="utf-8", errors="replace")[-2000:]
        time.sleep(0.2)
    assert summarize_run(run).state == "completed", (run / "train.log").read_text(encoding="utf-8")[-2000:]
    assert (run / "cats.safetensors").exists()


def test_while_another_desk_checks_a_run_ahead_for_a_target_no_later_run_takes_that_target(workspace):
    from lora_studio.fleet.claim import release, try_claim
    targets = [gpu_box("gpu-01")]
    _queue(workspace, "cats", "dogs")
    claim = try_claim(workspace / "runs" / "cats", "desk-2", "prepare", "gpu-01")  # its job ended meanwhile
    start = RecordingStart()
    assert dispatch(workspace, targets, start, "desk-1") == [] and start.calls == []  # dogs does not jump the queue
    release(workspace / "runs" / "cats", claim)
    dispatch(workspace, targets, start, "desk-1")
    assert start.calls == [("cats", "gpu-01")]


def test_when_the_other_target_frees_first_the_run_checked_for_it_goes_there_and_the_first_keeps_its_check(
        workspace, tmp_path):
    pretend_running(workspace / "runs" / "portrait", "gpu-01")            # both end soon
    landscape = pretend_running(workspace / "runs" / "landscape", "gpu-02")
    targets = [gpu_box("gpu-01"), gpu_box("gpu-02")]
    _queue(workspace, "cats", "dogs")
    ahead, check = StartsAhead(), RecordingCheck(workspace)
    prepare = Preparer(ahead, check)
    dispatch(workspace, targets, RecordingStart(), "desk-1", prepare=prepare)
    assert sorted(check.calls) == [("cats", "gpu-01"), ("dogs", "gpu-02")]
    finish(landscape)  # gpu-02 frees first
    launch = RecordingLaunch()
    starter = queued_launcher(TargetContext(TargetSettings(), tmp_path / "known_hosts"), workspace,
                              launch_fn=launch, ahead=ahead)
    [outcome] = dispatch(workspace, targets, starter, "desk-1", prepare=prepare)
    assert (outcome.run_dir.name, outcome.target) == ("dogs", "gpu-02") and launch.calls == [("dogs", True)]
    assert ahead.checked_for(read_entry(workspace / "runs" / "cats")) == targets[0]  # cats waits for gpu-01, checked
