"""Automatic recovery's decisions, without a trainer: when a run counts as lost (heartbeat, process,
vCenter), where it goes (its own target when back, else a free one that sees the run folder), the
config it starts again from (paths mapped back to the desk's view), and the lost mark every desk reads."""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import replace
from pathlib import Path

import yaml

from lora_studio.fleet import Needs
from lora_studio.fleet.dispatch import target_loads
from lora_studio.fleet.lost import judge
from lora_studio.fleet.recovery_pass import recovery_pass
from lora_studio.fleet.recovery_place import places
from lora_studio.fleet.recovery_settings import RecoverySettings, load_settings, save_settings
from lora_studio.fleet.restart_config import restart_config
from lora_studio.fleet.vm_watch import VmState
from lora_studio.targets import LocalTarget, PathMapping, SshTarget, TargetContext, TargetSettings, VSphereTarget
from lora_studio.targets.lost_mark import mark_lost
from lora_studio.targets.runinfo import RunInfo
from lora_studio.targets.runs import RunSummary, summarize_run

from .helpers import make_workspace, pretend_running, write_config

HERE = socket.gethostname()


def summary(state="training", age=1.0, host="gpu-07", pid=4242, target="vm-a", path=Path("/share/runs/r"),
            info_host=None) -> RunSummary:
    info = RunInfo("ssh", target, info_host or host, pid, [], time.time() - 100, "0", "ssh", str(path), "")
    return RunSummary(path, path.name, state, 5, 10, age, target, host, pid, time.time() - 100, None, info)


def vm(power="poweredOn", connection="connected") -> VmState:
    return VmState("lab", "gpu-07", power, "esx-1", connection)


def test_a_run_is_lost_when_its_vm_is_off_or_its_process_is_gone_not_when_it_is_only_quiet():
    # vCenter says powered off: lost at once, its heartbeat however fresh; its VM cannot take it back.
    verdict = judge(summary(age=2), 60, vm=vm("poweredOff"))
    assert verdict.lost and verdict.home_down and "VM gpu-07 is poweredOff (vCenter lab)" in verdict.reason
    # A fresh heartbeat on a host vCenter cannot reach: the VM may run on (only its management is cut off).
    assert not judge(summary(age=2), 60, vm=vm(connection="notResponding")).lost
    # (A run on another machine whose heartbeat is stale is summarized "lost", unless this desk saw it change.)
    stale_on_dead_host = judge(summary("lost", age=90), 60, vm=vm(connection="notResponding"))
    assert stale_on_dead_host.lost and stale_on_dead_host.home_down and "notResponding" in stale_on_dead_host.reason
    # Stale elsewhere: the target is asked; a trainer that still runs (hung) is left alone.
    assert not judge(summary("lost", age=90), 60).lost  # not asked yet
    assert not judge(summary("lost", age=90), 60, process_alive=lambda: True).lost
    gone = judge(summary("lost", age=90), 60, process_alive=lambda: False)
    assert gone.lost and not gone.home_down and gone.reason == "no heartbeat for 90 s and its trainer is gone from gpu-07"
    assert "cannot be reached" in judge(summary("lost", age=90), 60, process_alive=lambda: None).reason
    assert not judge(summary(age=30), 60, process_alive=lambda: False).lost  # within the threshold
    assert judge(summary("lost", age=30), 20, process_alive=lambda: False).lost  # the run's own, shorter threshold
    # On this machine the process table answers (the summary says lost when the pid is gone).
    assert judge(summary("lost", age=1, host=HERE), 60, this_host=HERE).lost
    assert not judge(summary(age=90, host=HERE), 60, this_host=HERE).lost
    # Another desk's finding, and runs that are not going.
    assert judge(summary(age=1), 60, mark={"reason": "VM x is poweredOff"}).reason == "VM x is poweredOff"
    for state in ("completed", "stopped", "failed", "launched", "queued"):
        assert not judge(summary(state, age=999), 60, vm=vm("poweredOff"), process_alive=lambda: False).lost


def _targets(workspace: Path):
    view = PathMapping(str(workspace), "/data/lora")
    return [VSphereTarget("vm-a", "lab", "gpu-07", ssh_user="t", mappings=(view,)),
            SshTarget(name="blind", host="blind.lab", user="t", mappings=(PathMapping("/elsewhere", "/data"),)),
            VSphereTarget("vm-off", "lab", "gpu-09", ssh_user="t", mappings=(view,)),
            SshTarget(name="busy", host="busy.lab", user="t", mappings=(view,)),
            SshTarget(name="free-1", host="free1.lab", user="t", mappings=(view,)),
            SshTarget(name="free-2", host="free2.lab", user="t", mappings=(view,)),
            LocalTarget()]


def test_a_lost_run_goes_back_to_its_vm_when_it_is_up_else_to_free_targets_that_see_the_share(tmp_path):
    workspace = make_workspace(tmp_path / "share")
    targets = _targets(workspace)
    pretend_running(workspace / "runs" / "other", "busy")
    run = summary(path=workspace / "runs" / "lost")
    loads = target_loads(targets, [summarize_run(workspace / "runs" / "other")], [])
    vms = {("lab", "gpu-07"): vm(), ("lab", "gpu-09"): VmState("lab", "gpu-09", "poweredOff", "esx-2", "connected")}

    def order(verdict_vm):
        verdict = judge(run, 60, vm=verdict_vm, process_alive=lambda: False)
        found, waits = places(run, verdict, targets, loads, {}, Needs(gpus=0), "desk-1", HERE, vms)
        return [t.name for t in found], {w.target: w.short for w in waits}

    # vSphere HA restarted its VM: back there first, the free targets after it.
    assert order(None) == (["vm-a", "free-1", "free-2"], {"blind": "cannot see the run", "vm-off": "down",
                                                          "busy": "busy"})
    # Its VM is off: never there; nor to a desk's own computer.
    found, waits = order(vm("poweredOff"))
    assert found == ["free-1", "free-2"] and waits["vm-a"] == "down"


def test_a_run_lost_on_this_computer_comes_back_here_but_not_on_another_desks_computer(tmp_path):
    workspace = make_workspace(tmp_path / "share")
    targets = [LocalTarget(), SshTarget(name="gpu", host="gpu.lab", user="t")]
    loads = target_loads(targets, [], [])
    for host, expected in ((HERE, ["This computer", "gpu"]), ("another-desk", ["gpu"])):
        run = summary("lost", host=host, target="This computer", path=workspace / "runs" / "r")
        verdict = judge(run, 60, process_alive=lambda: False, this_host=HERE)
        found, _ = places(run, verdict, targets, loads, {}, Needs(gpus=0), "desk-1", HERE)
        assert [t.name for t in found] == expected


def test_the_restart_config_has_the_desks_paths_and_resumes_from_the_newest_checkpoint(tmp_path):
    workspace = make_workspace(tmp_path / "share")
    run_dir = workspace / "runs" / "moved"
    run_dir.mkdir(parents=True)
    values = yaml.safe_load(write_config(workspace, "moved").read_text())
    # config.yaml as target vm-a wrote it: its own view of the share.
    values.update(train_data_dir="/data/lora/datasets/shapes", output_dir="/data/lora/runs/moved", resume="never",
                  base_model="/data/lora/models/tiny.safetensors")
    (run_dir / "config.yaml").write_text(yaml.safe_dump(values))
    old = _targets(workspace)[0]
    path = restart_config(run_dir, old, "desk-1")
    written = yaml.safe_load(path.read_text())
    assert written["train_data_dir"] == str(workspace / "datasets" / "shapes")
    assert written["base_model"] == str(workspace / "models" / "tiny.safetensors")
    assert (written["output_dir"], written["resume"]) == (str(run_dir), "auto")
    assert path.read_text().startswith("# Written by LoRA Studio on desk-1")


def test_every_desk_reads_a_marked_run_as_lost_but_not_its_next_trainer(tmp_path):
    run = pretend_running(tmp_path / "runs" / "r", "vm-a")
    status = json.loads((run / "status.json").read_text())
    status.update(host="gpu-07", pid=31337, process_started_at=1000.0)  # a trainer on a VM (not this machine)
    (run / "status.json").write_text(json.dumps(status))
    assert summarize_run(run).state == "training"  # its heartbeat is fresh
    mark_lost(run, status, "VM gpu-07 is poweredOff (vCenter lab)", "desk-1")
    assert summarize_run(run).state == "lost"
    status.update(pid=31338, process_started_at=2000.0, heartbeat=time.time())  # started again, elsewhere
    (run / "status.json").write_text(json.dumps(status))
    assert summarize_run(run).state == "training"


def test_a_pass_leaves_runs_alone_whose_recovery_is_off_and_settings_keep_their_threshold(tmp_path):
    workspace = make_workspace(tmp_path / "share")
    run = pretend_running(workspace / "runs" / "r", "This computer")
    status = json.loads((run / "status.json").read_text())
    status["pid"] = 2 ** 22 + os.getpid()  # no such process: lost at once on this machine
    (run / "status.json").write_text(json.dumps(status))
    assert summarize_run(run).state == "lost"
    ctx = TargetContext(TargetSettings(), tmp_path / "known_hosts")
    assert recovery_pass(workspace, ctx, "desk-1") == []  # recovery off: nothing is done
    save_settings(run, RecoverySettings(enabled=True, max_attempts=0, stale_after_s=5))
    assert load_settings(run) == RecoverySettings(True, 0, 5.0)
    [outcome] = recovery_pass(workspace, ctx, "desk-1")
    assert (outcome.kind, outcome.source) == ("gave_up", "This computer") and "gone" in outcome.reason


def _lost_two_node_run(workspace: Path) -> Path:
    """A run over gpu-a + gpu-b whose heartbeat went quiet 90 s ago (its nodes are asked through the probe)."""
    from lora_studio.targets.placement import Node, Placement
    from lora_studio.targets.runinfo import write_run_info

    run = pretend_running(workspace / "runs" / "wide", "gpu-a")
    status = json.loads((run / "status.json").read_text())
    status.update(host="gpu-a", pid=4101, heartbeat=time.time() - 90)  # rank 0 on gpu-a
    (run / "status.json").write_text(json.dumps(status))
    placement = Placement((Node("gpu-a", "10.0.0.11", 4101, 2, "train.log"),
                           Node("gpu-b", "10.0.0.12", 5202, 2, "train.node2.log")), "10.0.0.11:41234", "r-1", 3)
    write_run_info(run, RunInfo("ssh", "gpu-a", "10.0.0.11", 4101, ["torchrun"], time.time() - 300, "0", "ssh",
                                str(run), str(run / "config.yaml"), extra={"kind": "train", "placement": placement.to_json()}))
    (run / "config.yaml").write_text(write_config(workspace, "wide").read_text(), encoding="utf-8")
    save_settings(run, RecoverySettings(enabled=True, stale_after_s=60))
    return run


def test_a_lost_multi_node_run_is_judged_by_its_nodes_and_waits_for_all_of_them(tmp_path):
    workspace = make_workspace(tmp_path / "share")
    run = _lost_two_node_run(workspace)
    # Its rank 0 on this machine: a dead worker pid says nothing (torchrun starts new workers), its nodes do.
    local = replace(summarize_run(run), host=HERE)
    assert not judge(local, 60, process_alive=lambda: True, this_host=HERE).lost
    assert judge(local, 60, process_alive=lambda: False, this_host=HERE).lost
    ctx = TargetContext(TargetSettings(targets=[SshTarget(name="gpu-a", host="10.0.0.11", user="t")]),
                        tmp_path / "known_hosts")
    assert recovery_pass(workspace, ctx, "desk-1", probe=lambda *_: True) == []  # a torchrun is left: torchrun's own
    [outcome] = recovery_pass(workspace, ctx, "desk-1", probe=lambda *_: False)
    assert (outcome.kind, outcome.source) == ("failed", "gpu-a + gpu-b")
    assert outcome.message == "no target could take it: gpu-b: not set up on this desk"
    # Both set up, one busy with another run: it waits for both to be free, nothing is tried.
    pretend_running(workspace / "runs" / "other", "gpu-b")
    both = TargetContext(TargetSettings(targets=[SshTarget(name="gpu-a", host="10.0.0.11", user="t"),
                                                 SshTarget(name="gpu-b", host="10.0.0.12", user="t")]),
                         tmp_path / "known_hosts")
    [outcome] = recovery_pass(workspace, both, "desk-1", probe=lambda *_: False, retry_after_s=0)
    assert (outcome.kind, outcome.message) == ("waits", "gpu-b (busy: runs other)")


def test_resume_of_a_multi_node_run_names_a_node_this_desk_no_longer_has(tmp_path):
    import pytest

    from lora_studio.monitor.recovery import recover
    from lora_studio.targets.errors import TargetConfigError

    workspace = make_workspace(tmp_path / "share")
    run = _lost_two_node_run(workspace)
    ctx = TargetContext(TargetSettings(targets=[SshTarget(name="gpu-a", host="10.0.0.11", user="t")]),
                        tmp_path / "known_hosts")
    with pytest.raises(TargetConfigError, match="no target is called 'gpu-b'"):
        recover(run, ctx, workspace)  # it would go on one node only: said, not done


def test_a_multi_node_runs_nodes_that_vcenter_reports_off_are_named_for_the_pass_to_wait_for():
    from lora_studio.fleet.recovery_pass import nodes_down

    a = VSphereTarget("gpu-a", "lab", "vm-a", ssh_user="t")
    b = VSphereTarget("gpu-b", "lab", "vm-b", ssh_user="t")
    states = {("lab", "vm-a"): VmState("lab", "vm-a", "poweredOn", "esx-1", "connected"),
              ("lab", "vm-b"): VmState("lab", "vm-b", "poweredOff", "esx-2", "connected")}
    assert nodes_down([a, b], states) == ["VM vm-b is poweredOff (vCenter lab)"]
    assert nodes_down([a, b], {}) == []  # not asked: the launch's preflight will say
    assert nodes_down([a, SshTarget(name="gpu-c", host="c", user="t")], states) == []  # an SSH host is no VM
    asked_wrongly = {("lab", "vm-b"): VmState("lab", "vm-b", "", "", "", error="timed out")}
    assert nodes_down([b], asked_wrongly) == []  # vCenter could not say: not taken for off
