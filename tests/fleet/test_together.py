"""A run over several nodes in the queue: it goes out when all of its nodes are free at once, keeps
the free ones while it waits for busy ones, and is started on all of them with its torchrun options."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lora_studio.fleet import Needs, dispatch, enqueue, fleet_snapshot, queued_launcher
from lora_studio.fleet.api import nodes_options
from lora_studio.fleet.claim import try_claim
from lora_studio.fleet.dispatch import target_loads
from lora_studio.fleet.queue import FAILED, list_queue, read_entry
from lora_studio.targets import LaunchOutcome, NodesOptions, TargetContext, TargetSettings
from lora_studio.targets.preflight import PreflightReport
from lora_studio.targets.runs import list_runs

from .helpers import RecordingStart, finish, gpu_box, make_workspace, pretend_running, write_config

WIDE = Needs(gpus=1, memory_gb=9.5, targets=("gpu-a", "gpu-b"), together=True)


@pytest.fixture
def workspace(tmp_path) -> Path:
    return make_workspace(tmp_path / "share")


def _queue(workspace: Path, name: str, needs: Needs = Needs(), options: dict | None = None) -> Path:
    enqueue(write_config(workspace, name), workspace, needs, "desk-1", now=time.time(), options=options)
    return workspace / "runs" / name


def _rows(workspace, targets) -> dict[str, tuple[str, str]]:
    return {r.entry.name: (r.status, r.entry.needs.describe()) for r in fleet_snapshot(workspace, targets, "desk-1").queue}


def test_a_run_over_two_nodes_waits_for_both_keeps_the_free_one_and_goes_out_when_both_are_free(workspace):
    busy = pretend_running(workspace / "runs" / "portrait", "gpu-a")
    targets = [gpu_box("gpu-a"), gpu_box("gpu-b"), gpu_box("gpu-c")]
    _queue(workspace, "wide", WIDE)
    _queue(workspace, "cats")  # any target
    assert _rows(workspace, targets) == {
        "wide": ("waits for gpu-a (busy: runs portrait)", "2 nodes: 1 GPU, ~9.5 GiB each"),
        "cats": ("starts on gpu-c at the next check", "1 GPU")}  # gpu-b is kept for wide
    start = RecordingStart()
    dispatch(workspace, targets, start, "desk-1")
    assert start.calls == [("cats", "gpu-c")]
    _queue(workspace, "dogs", Needs(targets=("gpu-b",)))  # a later run that wants only the kept node
    assert dispatch(workspace, targets, start, "desk-1") == []
    assert _rows(workspace, targets)["dogs"][0] == "waits for gpu-b (busy: next: wide)"
    finish(busy)
    [outcome] = dispatch(workspace, targets, start, "desk-1")
    assert (outcome.run_dir.name, outcome.target, outcome.kind) == ("wide", "gpu-a", "started")  # node 1 hosts the rendezvous


def test_while_a_run_over_two_nodes_is_being_started_both_nodes_are_taken(workspace):
    targets = [gpu_box("gpu-a"), gpu_box("gpu-b")]
    run = _queue(workspace, "wide", WIDE)
    _queue(workspace, "cats")
    try_claim(run, "desk-2", "start", "gpu-a")  # another desk starts it right now
    loads = target_loads(targets, list_runs(workspace), list_queue(workspace))
    assert loads["gpu-a"].next == ["wide"] and loads["gpu-b"].next == ["wide"]
    start = RecordingStart()
    assert dispatch(workspace, targets, start, "desk-1") == [] and start.calls == []


def test_a_run_waiting_for_a_node_this_desk_lacks_keeps_no_node(workspace):
    targets = [gpu_box("gpu-a"), gpu_box("gpu-c")]  # no gpu-b here
    _queue(workspace, "wide", WIDE)
    _queue(workspace, "cats", Needs(targets=("gpu-a",)))
    start = RecordingStart()
    dispatch(workspace, targets, start, "desk-1")
    assert start.calls == [("cats", "gpu-a")]
    assert _rows(workspace, targets)["wide"][0] == "waits for gpu-a (busy), gpu-b (not on this desk)"


def test_the_queued_start_of_a_run_over_two_nodes_launches_on_both_with_its_torchrun_options(workspace, tmp_path):
    targets = [gpu_box("gpu-a"), gpu_box("gpu-b")]
    ctx = TargetContext(TargetSettings(targets=list(targets)), tmp_path / "known_hosts")
    _queue(workspace, "wide", WIDE, options=nodes_options(NodesOptions(max_restarts=5, rdzv_port=29411)))
    calls = []

    def launch_nodes(nodes, config, ctx, *, workspace=None, options=None):
        calls.append(([n.name for n in nodes], Path(config).name, options))
        pretend_running(Path(config).parent, nodes[0].name)
        return LaunchOutcome(PreflightReport("gpu-a + gpu-b"), info=object())

    def single_launch(*args, **kwargs):
        raise AssertionError("a run over several nodes went to the one-target launch")

    starter = queued_launcher(ctx, workspace, launch_fn=single_launch, launch_nodes_fn=launch_nodes)
    [outcome] = dispatch(workspace, targets, starter, "desk-1")
    assert outcome.kind == "started"
    assert calls == [(["gpu-a", "gpu-b"], "queued-config.yaml", NodesOptions(max_restarts=5, rdzv_port=29411))]


def test_a_queued_run_over_two_nodes_whose_node_was_removed_fails_with_its_name(workspace, tmp_path):
    targets = [gpu_box("gpu-a"), gpu_box("gpu-b")]
    ctx = TargetContext(TargetSettings(targets=[targets[0]]), tmp_path / "known_hosts")  # gpu-b removed since
    run = _queue(workspace, "wide", WIDE)
    [outcome] = dispatch(workspace, targets, queued_launcher(ctx, workspace), "desk-1")
    assert outcome.kind == "failed" and read_entry(run).state == FAILED
    assert "gpu-b is no longer set up on this desk" in outcome.message
