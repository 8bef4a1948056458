"""A lost run comes back by itself on another machine: the vCenter simulator powers its VM off, its
trainer is SIGKILLed (it kills itself at a known step), and a recovery pass starts it again on a second
SSH target from its last checkpoint. Two desks pass at once; exactly one restarts it. The run ends
with weights bit-identical to an uninterrupted run, and its curve has every step once. A lost run over
two VMs waits while the simulator reports one of them off.

Both SSH targets are the one sshd of the fixture (the VM's guest IP is 127.0.0.1 in the simulator),
defined twice with different path mappings: each sees the share at a folder of its own, so the
move maps the run folder anew, as a move between VMs with different mount points would.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from lora_studio.fleet.recovery_pass import STARTED, recovery_pass
from lora_studio.fleet.recovery_settings import RecoverySettings, save_settings
from lora_studio.targets import PathMapping, SshTarget, TargetContext, TargetSettings, VCenter, VSphereTarget, launch
from lora_studio.targets.api import connect
from lora_studio.targets.credentials import store_password
from lora_studio.targets.runinfo import read_run_info
from tests.test_train_e2e import make_dataset

from .helpers import ROOT, pid_alive, tail_log, wait_for, wait_state
from .test_ssh import pinned_context
from .test_vsphere import server_thumbprint

VM = "DC0_C0_RP0_VM0"   # a VM of the simulator's cluster (the other tests use the standalone host's)
STEPS, SAVE_STEPS, KILL_STEP = 8, 4, 7  # killed after step 7, before its metrics line: resumes from step 4
ONE_THREAD = "env OMP_NUM_THREADS=1"   # as the reference: the CPU kernels' sums depend on the thread count


def _config(path: Path, model: Path, data: Path, out: Path) -> Path:
    values = {"train_data_dir": str(data), "base_model": str(model), "output_dir": str(out), "output_name": "lora",
              "resolution": 64, "enable_bucket": False, "batch_size": 1, "max_train_steps": STEPS,
              "save_steps": SAVE_STEPS, "save_precision": "fp32", "tensorboard": False, "learning_rate": 1e-3,
              "sample_every_n_steps": 0, "seed": 5, "random_flip": True, "lora_dropout": 0.1}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


@pytest.fixture
def powered_off_later(vcsim):
    """VMs a test powers off; powered on again afterwards (the simulator is shared by the session)."""
    vcenter = VCenter("lab", vcsim.host, vcsim.user, vcsim.port, thumbprint=server_thumbprint(vcsim))
    names: list[str] = []
    yield vcenter, names
    store_password(vcenter.secret_account(), vcsim.password)
    ctx = TargetContext(TargetSettings(vcenters=[vcenter]), Path("/nonexistent"))
    with connect(vcenter, ctx) as session:
        for name in names:
            session.power_on(name, timeout=60)


@pytest.mark.slow
def test_a_run_whose_vm_is_powered_off_resumes_on_another_target_bit_identical(sshd, vcsim, tiny_model_of, tmp_path,
                                                                               powered_off_later, reap_trainers):
    import torch
    from safetensors.torch import load_file

    from lora_studio.monitor.series import MetricSeries

    vcenter, powered_off = powered_off_later
    workspace = tmp_path / "share"
    (workspace / "models").mkdir(parents=True)
    model = Path(shutil.copy(tiny_model_of("sd1").single_file, workspace / "models"))
    config = _config(workspace / "configs" / "moved.yaml", model, make_dataset(workspace / "data", "csv"),
                     workspace / "runs" / "moved")
    # The uninterrupted run, meanwhile, on a data set of its own (no two trainers fill one latent cache).
    reference = _config(tmp_path / "reference.yaml", model, make_dataset(tmp_path / "reference-data", "csv"),
                        tmp_path / "reference")
    uninterrupted = subprocess.Popen([*ONE_THREAD.split(), sys.executable, "-m", "trainer", "train", "--config",
                                      str(reference)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    views = {}
    for name in ("vm-view", "b-view"):  # each target sees the share at a folder of its own
        views[name] = tmp_path / name
        views[name].symlink_to(workspace, target_is_directory=True)
    kill = f"LORA_TRAINER_KILL_AT=step:{KILL_STEP} LORA_TRAINER_KILL_ONCE={tmp_path / 'killed-once'}"
    vm_target = VSphereTarget("vm-a", "lab", VM, launch="ssh", ssh_user=sshd.user, ssh_port=sshd.port, ssh_auth="key",
                              ssh_key_file=str(sshd.user_key), python=f"{ONE_THREAD} {kill} {sys.executable}",
                              mappings=(PathMapping(str(workspace), str(views["vm-view"])),))
    other = SshTarget(name="ssh-b", host=sshd.host, port=sshd.port, user=sshd.user, auth="key",
                      key_file=str(sshd.user_key), python=f"{ONE_THREAD} {sys.executable}",
                      mappings=(PathMapping(str(workspace), str(views["b-view"])),))
    store_password(vcenter.secret_account(), vcsim.password)
    ctx = TargetContext(TargetSettings(vcenters=[vcenter], targets=[vm_target, other]),
                        pinned_context(sshd, tmp_path).known_hosts)
    run_dir = workspace / "runs" / "moved"

    outcome = launch(vm_target, config, ctx, workspace=workspace)
    assert outcome.started, outcome.report.summary()
    reap_trainers.append(outcome.info.pid)
    assert outcome.info.vm == VM and str(views["vm-view"]) in outcome.info.run_dir
    save_settings(run_dir, RecoverySettings(enabled=True, max_attempts=2, stale_after_s=5))
    wait_for(lambda: not pid_alive(outcome.info.pid), 180, f"the trainer to kill itself at step {KILL_STEP}")
    with connect(vcenter, ctx) as session:  # the host under it dies: vCenter reports the VM powered off
        powered_off.append(VM)
        session.wait(session.find_vm(VM).PowerOffVM_Task(), 30, "powering off")

    # Two desks find it lost at the same moment: one restarts it, on the other target (its VM is off).
    with ThreadPoolExecutor(2) as pool:
        passes = [pool.submit(recovery_pass, workspace, ctx, desk) for desk in ("desk-1", "desk-2")]
        outcomes = [o for p in passes for o in p.result()]
    started = [o for o in outcomes if o.kind == STARTED]
    assert len(started) == 1, outcomes
    assert (started[0].source, started[0].target) == ("vm-a", "ssh-b") and "poweredOff" in started[0].reason
    info = read_run_info(run_dir)
    reap_trainers.append(info.pid)
    assert info.target_name == "ssh-b" and str(views["b-view"]) in info.run_dir
    assert recovery_pass(workspace, ctx, "desk-3") == []  # started again: no longer lost

    wait_state(run_dir, ("completed",), timeout=240, min_step=STEPS)
    assert uninterrupted.wait(240) == 0, uninterrupted.stderr.read().decode(errors="replace")[-2000:]
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    [moved] = [e for e in events if e["kind"] == "recovery"]
    assert (moved["from"], moved["to"], moved["step"], moved["attempt"]) == ("vm-a", "ssh-b", SAVE_STEPS, 1)
    assert f"VM {VM} is poweredOff (vCenter lab)" in moved["reason"]
    assert [e["step"] for e in events if e["kind"] == "resume"] == [SAVE_STEPS], tail_log(run_dir)

    # Steps 5 and 6 were written twice (before the kill, and after the resume); the curve has each once.
    logged = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert logged == [*range(1, KILL_STEP), *range(SAVE_STEPS + 1, STEPS + 1)]
    series = MetricSeries(run_dir / "metrics.jsonl")
    series.refresh()
    assert list(series.column("step")) == list(range(1, STEPS + 1))

    expected, got = load_file(tmp_path / "reference" / "lora.safetensors"), load_file(run_dir / "lora.safetensors")
    assert expected.keys() == got.keys() and expected
    assert all(torch.equal(expected[key], got[key]) for key in expected)


def test_a_lost_two_node_run_waits_while_vcenter_reports_one_of_its_vms_off(vcsim, tmp_path, powered_off_later):
    """Its nodes' VMs are asked in the pass: while one is off (vSphere HA may bring it back) the run waits,
    with vCenter's words, and no attempt is spent on a start that could not reach that node."""
    import os
    import time

    from lora_studio.fleet.recovery_settings import recovery_events
    from lora_studio.targets.placement import Node, Placement
    from lora_studio.targets.runinfo import RunInfo, write_run_info

    vcenter, powered_off = powered_off_later
    other_vm = "DC0_C0_RP0_VM1"
    nodes = [VSphereTarget(name, "lab", vm, launch="ssh", ssh_user="t") for name, vm in (("vm-a", VM), ("vm-b", other_vm))]
    store_password(vcenter.secret_account(), vcsim.password)
    ctx = TargetContext(TargetSettings(vcenters=[vcenter], targets=nodes), tmp_path / "known_hosts")
    run_dir = tmp_path / "share" / "runs" / "wide"
    run_dir.mkdir(parents=True)
    quiet = time.time() - 90  # its heartbeat stopped a while ago, and (the probe says) no torchrun is left
    (run_dir / "status.json").write_text(json.dumps({"state": "training", "step": 40, "total_steps": 100,
                                                     "heartbeat": quiet, "pid": os.getpid(), "host": "10.0.0.11"}))
    placement = Placement((Node("vm-a", "10.0.0.11", 4101, 1, "train.log"), Node("vm-b", "10.0.0.12", 5202, 1,
                                                                                 "train.node2.log")), "10.0.0.11:29400", "r", 3)
    write_run_info(run_dir, RunInfo("vsphere", "vm-a", "10.0.0.11", 4101, ["torchrun"], quiet - 600, "0", "ssh",
                                    str(run_dir), str(run_dir / "config.yaml"), vm=VM, vcenter="lab",
                                    extra={"kind": "train", "placement": placement.to_json()}))
    save_settings(run_dir, RecoverySettings(enabled=True, stale_after_s=60))
    with connect(vcenter, ctx) as session:
        powered_off.append(other_vm)
        session.wait(session.find_vm(other_vm).PowerOffVM_Task(), 30, "powering off")

    [outcome] = recovery_pass(tmp_path / "share", ctx, "desk-1", probe=lambda *_: False)
    assert (outcome.kind, outcome.source) == ("waits", "vm-a + vm-b")
    assert outcome.message == f"VM {other_vm} is poweredOff (vCenter lab)"
    assert recovery_events(run_dir) == []  # no attempt spent
