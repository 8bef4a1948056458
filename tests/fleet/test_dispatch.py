"""Sending queued runs: in order, to the first free target that fits; a failed start says why and stays
put; a busy one stays queued; claims of other desks are respected, stale ones broken; Start queues
behind the runs already waiting."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from lora_studio.fleet import (Needs, QueueError, StartResult, dispatch, enqueue, fleet_snapshot, list_queue, needs_for, note_gpus,
                               requeue, start_or_queue)
from lora_studio.fleet.claim import CLAIM_FILE, try_claim
from lora_studio.fleet.fit import load_gpu_notes
from lora_studio.fleet.queue import read_entry
from lora_studio.targets import LaunchOutcome, LocalTarget, TargetContext, TargetSettings
from lora_studio.targets.preflight import ERROR, PreflightReport

from .helpers import RecordingStart, finish, gpu_box, make_workspace, pretend_running, write_config


@pytest.fixture
def workspace(tmp_path) -> Path:
    return make_workspace(tmp_path / "share")


def _queue(workspace: Path, *names: str, desk: str = "desk-1", needs: Needs = Needs()) -> list[Path]:
    start = time.time()
    for offset, name in enumerate(names):
        enqueue(write_config(workspace, name), workspace, needs, desk, now=start + offset)
    return [workspace / "runs" / name for name in names]


def _status(workspace, targets, desk="desk-1", notes=None) -> dict[str, str]:
    return {row.entry.name: row.status for row in fleet_snapshot(workspace, targets, desk, notes).queue}


def _waits(workspace, targets, desk="desk-1", notes=None) -> dict[str, list[str]]:
    return {row.entry.name: [w.line() for w in row.waits] for row in fleet_snapshot(workspace, targets, desk, notes).queue}


def test_queued_runs_go_in_order_to_the_first_free_target_and_the_rest_wait_for_a_free_one(workspace):
    busy = pretend_running(workspace / "runs" / "portrait", "gpu-01")
    targets = [gpu_box("gpu-01"), gpu_box("gpu-02")]
    _queue(workspace, "cats", "dogs", "fox")
    assert _status(workspace, targets) == {"cats": "starts on gpu-02 at the next check",
                                           "dogs": "waits for gpu-01 (busy), gpu-02 (busy)",
                                           "fox": "waits for gpu-01 (busy), gpu-02 (busy)"}
    assert _waits(workspace, targets)["dogs"] == ["gpu-01: busy: runs portrait", "gpu-02: busy: next: cats"]
    start = RecordingStart()
    [outcome] = dispatch(workspace, targets, start, "desk-1")
    assert start.calls == [("cats", "gpu-02")] and outcome.kind == "started"
    assert read_entry(workspace / "runs" / "cats").started["target"] == "gpu-02"
    assert dispatch(workspace, targets, start, "desk-1") == []  # both busy now: nothing moves
    assert _waits(workspace, targets)["dogs"] == ["gpu-01: busy: runs portrait", "gpu-02: busy: runs cats"]
    finish(busy)  # gpu-01 frees up: the first waiting run gets it, the next one keeps waiting
    dispatch(workspace, targets, start, "desk-1")
    assert start.calls[1:] == [("dogs", "gpu-01")] and [e.name for e in list_queue(workspace)] == ["fox"]


def test_starts_on_two_targets_run_at_the_same_time_and_outcomes_keep_the_queue_order(workspace):
    """A start's preflight takes seconds: the second free target must not wait through the first one's."""
    import threading

    targets = [gpu_box("gpu-01"), gpu_box("gpu-02")]
    _queue(workspace, "cats", "dogs")
    both_started = threading.Barrier(2, timeout=60)  # passes only when both starts are in progress at once
    recorded = RecordingStart()

    def start(entry, target):
        both_started.wait()
        return recorded(entry, target)

    outcomes = dispatch(workspace, targets, start, "desk-1")
    assert [(o.run_dir.name, o.target, o.kind) for o in outcomes] == [("cats", "gpu-01", "started"),
                                                                     ("dogs", "gpu-02", "started")]
    assert sorted(recorded.calls) == [("cats", "gpu-01"), ("dogs", "gpu-02")]


def test_a_run_goes_to_a_target_whose_gpu_fits_it_and_says_which_ones_cannot_take_it(workspace, tmp_path):
    notes = tmp_path / "gpus.json"
    note_gpus(notes, "small", {"gpus": [{"name": "RTX 4060", "total_gb": 8.0}]})
    note_gpus(notes, "cpu-box", {"gpus": []})
    note_gpus(notes, "big", {"gpus": [{"name": "A100", "total_gb": 80.0}, {"name": "A100", "total_gb": 80.0}]})
    targets = [gpu_box("small"), gpu_box("cpu-box"), gpu_box("big")]
    assert load_gpu_notes(notes)["big"].describe() == "2 × A100 (80 GiB)"
    _queue(workspace, "sdxl", needs=Needs(gpus=1, memory_gb=12.4))
    start = RecordingStart()
    dispatch(workspace, targets, start, "desk-1", load_gpu_notes(notes))
    assert start.calls == [("sdxl", "big")]
    _queue(workspace, "sdxl-2", needs=Needs(gpus=1, memory_gb=12.4))
    assert _status(workspace, targets, notes=notes)["sdxl-2"] == "waits for small (GPU too small), cpu-box (no GPU), big (busy)"
    assert _waits(workspace, targets, notes=notes)["sdxl-2"] == [
        "small: its GPU has 8 GiB, this run needs ~12.4 GiB", "cpu-box: it has no GPU", "big: busy: runs sdxl"]


def test_what_a_run_needs_comes_from_its_config_the_estimate_and_the_targets_it_may_use(tmp_path):
    notes = tmp_path / "gpus.json"
    note_gpus(notes, "laptop", {"gpus": []})
    known = load_gpu_notes(notes)
    assert needs_for({"device": "auto"}, 5.26, ["gpu-01"], known) == Needs(1, 5.3, ("gpu-01",))
    assert needs_for({"device": "cpu"}, 5.26, [], known) == Needs(0, None, ())
    # The user chose a machine without a GPU: Start would train there on its CPU, so the queue does too.
    assert needs_for({"device": "auto"}, 5.26, ["laptop"], known).gpus == 0
    assert Needs(1, 5.3).describe() == "1 GPU, ~5.3 GiB" and Needs(0).describe() == "CPU"
    assert load_gpu_notes(tmp_path / "missing.json") == {}
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    assert load_gpu_notes(tmp_path / "bad.json") == {}


def test_a_failed_start_lets_go_of_its_claim_says_why_and_waits_for_the_user(workspace):
    cats, dogs = _queue(workspace, "cats", "dogs")
    targets = [gpu_box("gpu-01", max_jobs=2)]
    failing = RecordingStart(StartResult(False, problems=("gpu-01 cannot see the dataset — add a path mapping",)))
    outcomes = dispatch(workspace, targets, failing, "desk-1")
    assert [o.kind for o in outcomes] == ["failed", "failed"]
    entry = read_entry(cats)
    assert entry.state == "failed" and entry.error["target"] == "gpu-01" and entry.error["desk"] == "desk-1"
    assert entry.error["message"] == "could not start on gpu-01: gpu-01 cannot see the dataset — add a path mapping"
    assert not (cats / CLAIM_FILE).exists()
    assert _status(workspace, targets)["cats"] == entry.error["message"]
    assert dispatch(workspace, targets, failing, "desk-1") == [] and len(failing.calls) == 2  # not tried again
    requeue(cats, "desk-1")
    start = RecordingStart()
    dispatch(workspace, targets, start, "desk-1")
    assert start.calls == [("cats", "gpu-01")] and read_entry(cats).error is None


def test_a_start_that_raises_is_recorded_and_one_refused_as_busy_stays_queued(workspace):
    cats, dogs = _queue(workspace, "cats", "dogs")

    def boom(entry, target):
        raise OSError("the share went away")
    [outcome, _] = dispatch(workspace, [gpu_box("gpu-01", max_jobs=2)], boom, "desk-1")
    assert outcome.kind == "failed" and "the share went away" in read_entry(cats).error["message"]
    requeue(cats, "desk-1")
    requeue(dogs, "desk-1")
    busy = RecordingStart(StartResult(False, busy=True))
    outcomes = dispatch(workspace, [gpu_box("gpu-01", max_jobs=2)], busy, "desk-1")
    # Refused as busy (another desk got there first): it stays queued, and the target is not asked again this pass.
    assert [o.kind for o in outcomes] == ["busy"] and busy.calls == [("cats", "gpu-01")]
    assert [e.state for e in list_queue(workspace)] == ["queued", "queued"] and not (cats / CLAIM_FILE).exists()


def test_a_run_another_desk_is_starting_is_left_alone_and_a_claim_left_by_a_dead_desk_is_broken(workspace):
    cats, dogs = _queue(workspace, "cats", "dogs")
    try_claim(cats, "desk-9", "start", "gpu-01")
    targets = [gpu_box("gpu-01", max_jobs=3)]
    start = RecordingStart()
    dispatch(workspace, targets, start, "desk-1")
    assert start.calls == [("dogs", "gpu-01")]
    assert _status(workspace, targets)["cats"] == "being started on gpu-01 by desk-9"
    # desk-9 died in the middle of the start, before the trainer ran: its claim is broken, the run goes out again.
    assert dispatch(workspace, targets, start, "desk-1", stale_after_s=3600) == []
    dispatch(workspace, targets, start, "desk-1", stale_after_s=0)
    assert start.calls[-1] == ("cats", "gpu-01") and read_entry(cats).state == "started"


def test_a_stale_claim_of_a_run_that_did_start_marks_it_started_instead_of_starting_it_again(workspace):
    (cats,) = _queue(workspace, "cats")
    try_claim(cats, "desk-9", "start", "gpu-01")
    pretend_running(cats, "gpu-01")  # desk-9 launched the trainer, then died before it wrote "started"
    start = RecordingStart()
    dispatch(workspace, [gpu_box("gpu-01", max_jobs=3)], start, "desk-1", stale_after_s=0)
    assert start.calls == []
    entry = read_entry(cats)
    assert entry.state == "started" and entry.started["desk"] == "desk-9" and not (cats / CLAIM_FILE).exists()


def test_this_computer_takes_only_the_runs_queued_on_its_own_desk(workspace):
    _queue(workspace, "mine", desk="desk-1")
    _queue(workspace, "theirs", desk="desk-2", needs=Needs(targets=("This computer",)))
    targets = [LocalTarget(max_jobs=2)]
    start = RecordingStart()
    dispatch(workspace, targets, start, "desk-1")
    assert start.calls == [("mine", "This computer")]
    assert _status(workspace, targets)["theirs"] == "waits for desk-2 (This computer: only that desk starts it)"


def _launcher(result: str):
    calls = []

    def launch(target, config, ctx, *, workspace=None):
        calls.append((target.name, Path(config).name))
        report = PreflightReport(target.name, doctor={"gpus": [{"name": "A100", "total_gb": 80.0}]})
        if result == "busy":
            report.add("busy", ERROR, f"{target.name} already runs x", "wait")
        elif result == "failed":
            report.add("reachable", ERROR, f"{target.name} is unreachable", "check the network")
        return LaunchOutcome(report, info=object() if result == "started" else None)
    launch.calls = calls
    return launch


def test_start_runs_on_a_free_target_and_queues_when_every_target_is_busy_or_runs_wait_ahead(workspace, tmp_path):
    ctx = TargetContext(TargetSettings(), tmp_path / "known_hosts")
    targets = [gpu_box("gpu-01"), gpu_box("gpu-02")]
    notes = tmp_path / "gpus.json"
    launch = _launcher("started")
    decision = start_or_queue(write_config(workspace, "a"), targets, ctx, workspace, Needs(), "desk-1",
                              notes_path=notes, launch_fn=launch)
    assert decision.outcome.started and decision.target == "gpu-01" and launch.calls == [("gpu-01", "a.yaml")]
    assert load_gpu_notes(notes)["gpu-01"].describe() == "1 × A100 (80 GiB)"  # the doctor's GPUs, kept for the fit
    pretend_running(workspace / "runs" / "a", "gpu-01")
    pretend_running(workspace / "runs" / "b", "gpu-02")
    decision = start_or_queue(write_config(workspace, "c"), targets, ctx, workspace, Needs(targets=("gpu-01",)),
                              "desk-1", launch_fn=launch)
    assert decision.outcome is None and decision.queued.name == "c" and len(launch.calls) == 1
    assert decision.waits_for == "gpu-01 (busy: runs a)"
    finish(workspace / "runs" / "a")  # gpu-01 is free, but c waits for it first: d queues behind c
    decision = start_or_queue(write_config(workspace, "d"), targets, ctx, workspace, Needs(), "desk-1", launch_fn=launch)
    assert decision.queued.name == "d" and decision.waits_for == "gpu-01 (busy), gpu-02 (busy)"
    assert [e.name for e in list_queue(workspace)] == ["c", "d"] and len(launch.calls) == 1
    finish(workspace / "runs" / "b")  # gpu-02 is free now, but Start on c again neither starts nor queues it twice
    with pytest.raises(QueueError, match="c is already queued"):
        start_or_queue(workspace / "configs" / "c.yaml", targets, ctx, workspace, Needs(), "desk-1", launch_fn=launch)
    assert len(launch.calls) == 1


def test_start_queues_a_run_whose_launch_finds_the_target_busy_and_reports_other_failures(workspace, tmp_path):
    ctx = TargetContext(TargetSettings(), tmp_path / "known_hosts")
    targets = [gpu_box("gpu-01"), gpu_box("gpu-02")]
    busy = start_or_queue(write_config(workspace, "a"), targets, ctx, workspace, Needs(targets=("gpu-01",)), "desk-1",
                          launch_fn=_launcher("busy"))
    assert busy.queued is not None and busy.waits_for == "gpu-01 (busy: another desk started a run there just now)"
    failed = start_or_queue(write_config(workspace, "b"), targets, ctx, workspace, Needs(targets=("gpu-02",)),
                            "desk-1", launch_fn=_launcher("failed"))
    assert failed.queued is None and not failed.outcome.started and failed.target == "gpu-02"
    assert [e.name for e in list_queue(workspace)] == ["a"]
    assert json.loads((workspace / "runs" / "a" / "queue.json").read_text())["needs"]["targets"] == ["gpu-01"]


def test_a_started_run_keeps_its_claim_so_a_desk_reading_an_old_queue_file_cannot_start_it_again(workspace):
    (cats,) = _queue(workspace, "cats")
    old_copy = (cats / "queue.json").read_text(encoding="utf-8")
    start = RecordingStart()
    dispatch(workspace, [gpu_box("gpu-01", max_jobs=3)], start, "desk-1")
    assert read_entry(cats).state == "started" and (cats / CLAIM_FILE).exists()
    (cats / "queue.json").write_text(old_copy, encoding="utf-8")  # what a desk with a stale view of the share sees
    dispatch(workspace, [gpu_box("gpu-01", max_jobs=3)], start, "desk-2")
    assert start.calls == [("cats", "gpu-01")]  # "queued", it says, but its claim is taken for good: started once
    (cats / "queue.json").write_text(json.dumps({**json.loads(old_copy), "state": "started"}), encoding="utf-8")
    finish(cats)  # that run ended: its folder may be queued again, and the kept claim goes
    enqueue(workspace / "configs" / "cats.yaml", workspace, Needs(), "desk-2")
    dispatch(workspace, [gpu_box("gpu-01", max_jobs=3)], start, "desk-2")
    assert start.calls == [("cats", "gpu-01"), ("cats", "gpu-01")]


def test_launch_options_chosen_at_start_go_with_the_queued_run(workspace, tmp_path):
    from lora_studio.fleet import queued_launcher
    ctx = TargetContext(TargetSettings(), tmp_path / "known_hosts")
    pretend_running(workspace / "runs" / "a", "vm-01")
    decision = start_or_queue(write_config(workspace, "b"), [gpu_box("vm-01")], ctx, workspace, Needs(), "desk-1",
                              launch_fn=_launcher("started"), options={"snapshot_first": True})
    assert decision.queued.options == {"snapshot_first": True}
    finish(workspace / "runs" / "a")
    seen = []

    def launch(target, config, ctx, *, workspace=None, **options):
        seen.append(options)
        return LaunchOutcome(PreflightReport(target.name), info=object())
    starter = queued_launcher(ctx, workspace, launch_fn=launch,
                              launch_options=lambda entry, target: {"before_start": entry.options["snapshot_first"]})
    dispatch(workspace, [gpu_box("vm-01")], starter, "desk-1")
    assert seen == [{"before_start": True}]
