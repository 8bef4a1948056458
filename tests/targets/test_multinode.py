"""One run over two SSH targets with torchrun (gloo on the CPU): two sshd processes, the second in a
network namespace of its own (see netns_hosts.py), so the two nodes are separate hosts.

The two-node run ends bit-identical to one node with two processes, even though one node's
worker is killed mid-run (torchrun restarts the workers, they resume from the last checkpoint)
and later both nodes die (automatic recovery starts it again on both, from the checkpoint they left);
stop and liveness reach both nodes; a rendezvous address the other node cannot reach fails at
preflight, naming the host and the port, instead of hanging in torchrun.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import sys
import time
from pathlib import Path

import paramiko
import pytest
import yaml

from lora_studio.targets import (LocalTarget, NodesOptions, Placement, PreflightReport, SshTarget, TargetContext,
                                 TargetSettings, VSphereTarget, is_running, launch_nodes, list_runs, placement_of,
                                 preflight_nodes, read_run_info, stop)
from lora_studio.targets import commands
from lora_studio.targets.api import open_shell
from lora_studio.targets.run_control import RunProbe
from lora_studio.targets.launch import LOG_FILE, MappedJob
from lora_studio.targets.multinode import node_env, target_problems, torchrun_argv
from lora_studio.targets.placement import Node
from lora_studio.targets.rendezvous import NodeShell, check_interface
from lora_studio.targets.runinfo import RunInfo, write_run_info
from lora_studio.targets.ssh import trust_host_key
from tests.cli_helpers import ranks_trainer
from tests.test_train_e2e import make_dataset

from .helpers import pid_alive, tail_log, wait_for
from .netns_hosts import Cluster, start_cluster

STEPS, KILL_STEP, HOLD_STEP = 6, 3, 4


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two SSH hosts; separate network namespaces when this machine allows (root and ``ip netns``)."""
    from .conftest import SSHD
    if not Path(SSHD).exists():
        pytest.skip(f"{SSHD} is missing: apt-get install openssh-server (listed in scripts/system-packages.txt)")
    made, stop_all = start_cluster(tmp_path_factory.mktemp("cluster"))
    if not made.separate:
        print("multi-node tests: no ip netns here (needs root); both sshd processes listen on loopback")
    yield made
    stop_all()


def node(server, name: str, interface: str, *, env: str = "", **changes) -> SshTarget:
    # One thread per process, as in the one-node reference: the CPU kernels' results depend on it.
    fields = dict(name=name, host=server.host, port=server.port, user=server.user, auth="key",
                  key_file=str(server.user_key), python=f"env OMP_NUM_THREADS=1 {env}{sys.executable}",
                  network_interface=interface)
    fields.update(changes)
    return SshTarget(**fields)


def context(cluster: Cluster, tmp_path: Path, *targets) -> TargetContext:
    """A context that trusts both servers (and node a at its loopback address)."""
    known = tmp_path / "app" / "known_hosts"
    for server in (cluster.a, cluster.b, cluster.a_loopback):
        kind, blob = server.host_key_pub.read_text().split()[:2]
        trust_host_key(known, server.host, server.port, paramiko.PKey.from_type_string(kind, base64.b64decode(blob)))
    return TargetContext(TargetSettings(targets=list(targets)), known)


def write_config(path: Path, model: Path, data: Path, out: Path) -> Path:
    values = {"train_data_dir": str(data), "base_model": str(model), "output_dir": str(out), "output_name": "lora",
              "resolution": 64, "enable_bucket": False, "batch_size": 1, "max_train_steps": STEPS, "save_steps": 2,
              "tensorboard": False, "learning_rate": 1e-3, "sample_every_n_steps": 0}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


@pytest.fixture
def reap(cluster):
    """Pids of processes a test started (here or in node b's namespace); those alive at the end are killed."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        # The workers first: torchrun starts them in sessions of their own, so they outlive it.
        for victim in [*_descendants(pid), pid]:
            if pid_alive(victim):
                os.kill(victim, signal.SIGKILL)


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children of each of its threads, then theirs)."""
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            kids = [int(k) for k in children.read_text().split()]
        except (OSError, ValueError):
            continue
        for kid in kids:
            found += [kid, *_descendants(kid)]
    return found


def status_of(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}


@pytest.mark.slow
def test_two_nodes_match_one_node_with_two_processes_bit_for_bit_after_a_lost_worker_and_lost_nodes(
        cluster, tmp_path, tiny_model_of, reap):
    import torch
    from safetensors.torch import load_file

    from lora_studio.fleet import RecoverySettings, recovery_pass
    from lora_studio.fleet.recovery_settings import save_settings
    from lora_studio.monitor.series import MetricSeries
    from trainer.checkpoint import list_checkpoints

    model = tiny_model_of("sd1").single_file
    data = make_dataset(tmp_path / "ws" / "data", "txt")
    reference = write_config(tmp_path / "reference.yaml", model, data, tmp_path / "reference")
    done = ranks_trainer(reference, processes=2)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    # Node b's worker SIGKILLs itself after step 3, once (the marker): torchrun restarts the workers
    # of both nodes, which resume from the checkpoint of step 2. After step 4 (and its checkpoint)
    # every worker waits, for the test to end both nodes as a power cut would.
    marker = tmp_path / "killed-once"
    hold = f"LORA_TRAINER_HOLD_AT=step:{HOLD_STEP} "
    a = node(cluster.a, "node a", cluster.interface_a, env=hold)
    b = node(cluster.b, "node b", cluster.interface_b,
             env=f"{hold}LORA_TRAINER_KILL_AT=step:{KILL_STEP} LORA_TRAINER_KILL_ONCE={marker} ")
    ctx = context(cluster, tmp_path, a, b)
    run_dir = tmp_path / "ws" / "runs" / "two nodes"
    config = write_config(tmp_path / "ws" / "configs" / "two.yaml", model, data, run_dir)
    outcome = launch_nodes([a, b], config, ctx, workspace=tmp_path / "ws", options=NodesOptions(max_restarts=2))
    assert outcome.started, outcome.report.summary()
    placement = placement_of(read_run_info(run_dir))
    reap.extend(n.pid for n in placement.nodes)
    assert [(n.target, n.host, n.processes, n.interface) for n in placement.nodes] == [
        ("node a", cluster.a.host, 1, cluster.interface_a), ("node b", cluster.b.host, 1, cluster.interface_b)]
    assert placement.endpoint.startswith(f"{cluster.a.host}:") and placement.describe() == "2 nodes × 1 process"
    assert [r.targets for r in list_runs(tmp_path / "ws")] == [("node a", "node b")]  # busy on both
    assert "--nnodes" in outcome.info.command
    assert outcome.info.command[-5:] == ["-m", "trainer", "train", "--config", str(run_dir / "config.yaml")]

    wait_for(lambda: [c.name for c in list_checkpoints(run_dir)][-1:] == [f"step-{HOLD_STEP:08d}"], 240,
             f"the checkpoint of step {HOLD_STEP}", poll=1.0)
    assert marker.exists()  # node b's worker was killed, and torchrun brought the run back
    victims = [v for n in placement.nodes for v in (*_descendants(n.pid), n.pid)]
    for victim in victims:
        os.kill(victim, signal.SIGKILL)  # both nodes go down at once
    wait_for(lambda: not any(pid_alive(v) for v in victims), 30, "both nodes' processes to go")
    # Its rank 0's dead pid does not make it lost (torchrun replaces workers): its heartbeat and nodes do.
    assert [r.state for r in list_runs(tmp_path / "ws")] == ["training"]

    # Automatic recovery: once the heartbeat is stale and neither node's torchrun is left, both nodes
    # again (now without the test's hooks), the same processes each, from step 4.
    save_settings(run_dir, RecoverySettings(enabled=True, stale_after_s=2))
    a, b = node(cluster.a, "node a", cluster.interface_a), node(cluster.b, "node b", cluster.interface_b)
    ctx = context(cluster, tmp_path, a, b)
    outcomes = wait_for(lambda: [o for o in recovery_pass(tmp_path / "ws", ctx, "test-desk") if o.kind != "waits"]
                        or None, 60, "a recovery pass to act", poll=1.0)
    assert [(o.kind, o.target) for o in outcomes] == [("started", "node a + node b")], outcomes
    placement = placement_of(read_run_info(run_dir))
    reap.extend(n.pid for n in placement.nodes)
    assert placement.targets == ("node a", "node b") and placement.describe() == "2 nodes × 1 process"
    probe = RunProbe(run_dir, ctx)  # asks both nodes over connections it keeps
    try:
        wait_for(lambda: not probe.alive(), 240, "torchrun to end on both nodes", poll=1.0)
    finally:
        probe.close()
    assert status_of(run_dir).get("state") == "completed", (
        f"{status_of(run_dir)}\n{tail_log(run_dir)}\nnode b: {(run_dir / 'train.node2.log').read_text()[-3000:]}")
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e["kind"] == "resume"] == [2, HOLD_STEP]
    assert [e["to"] for e in events if e["kind"] == "recovery"] == ["node a + node b"]
    series = MetricSeries(run_dir / "metrics.jsonl")
    series.refresh()
    assert list(series.column("step")) == list(range(1, STEPS + 1))  # every step once on the curve
    ref_series = MetricSeries(tmp_path / "reference" / "metrics.jsonl")
    ref_series.refresh()
    assert list(series.column("loss")) == list(ref_series.column("loss"))
    mine, theirs = load_file(run_dir / "lora.safetensors"), load_file(tmp_path / "reference" / "lora.safetensors")
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert "2 processes" in (run_dir / LOG_FILE).read_text()


# One line: the liveness probe reads a process's command line up to its first newline.
_FAKE_TORCHRUN = (
    "import signal, subprocess, sys, time; "
    "signal.signal(signal.SIGTERM, signal.SIG_IGN); "  # a hung node: only the kill ends it
    # torchrun's workers have sessions of their own
    "child = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
    "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)'], start_new_session=True); "
    "open(sys.argv[1], 'w').write(str(child.pid)); time.sleep(600)")


def test_liveness_and_the_kill_reach_every_node_and_its_workers(cluster, tmp_path, reap):
    a, b = node(cluster.a, "node a", cluster.interface_a), node(cluster.b, "node b", cluster.interface_b)
    ctx = context(cluster, tmp_path, a, b)
    run_dir = tmp_path / "runs" / "fake"
    run_dir.mkdir(parents=True)
    nodes, children = [], []
    for index, target in enumerate((a, b)):
        child_file = run_dir / f"child{index}"
        argv = [sys.executable, "-c", _FAKE_TORCHRUN, str(child_file), "-m", "trainer", "train"]
        with open_shell(target, ctx) as shell:
            pid = int(shell.run_script(commands.detached_launch(argv, str(run_dir), f"node{index}.log")).stdout.split()[-1])
        reap.append(pid)
        children.append(int(wait_for(lambda f=child_file: f.exists() and f.read_text(), 30, "the fake worker")))
        reap.append(children[-1])
        nodes.append(Node(target.name, target.host, pid, 1, f"node{index}.log"))
    placement = Placement(tuple(nodes), f"{a.host}:1", "fake", 0)
    write_run_info(run_dir, RunInfo("ssh", a.name, a.host, nodes[0].pid, [], time.time(), "0", "ssh", str(run_dir),
                                    str(run_dir / "config.yaml"), extra={"placement": placement.to_json()}))
    assert is_running(run_dir, ctx)
    os.kill(nodes[0].pid, signal.SIGKILL)
    os.kill(children[0], signal.SIGKILL)
    wait_for(lambda: not pid_alive(nodes[0].pid), 10, "node a's process to go")
    assert is_running(run_dir, ctx)  # node b still runs
    stages: list[str] = []
    result = stop(run_dir, ctx, use_stop_file=False, kill_after_s=1, poll_s=0.2, on_stage=stages.append)
    assert stages == ["terminate", "kill"] and result.stopped, result
    assert not pid_alive(nodes[1].pid) and not pid_alive(children[1])  # torchrun and its worker of node b
    assert not is_running(run_dir, ctx)


def test_an_unreachable_rendezvous_fails_at_preflight_naming_host_and_port(cluster, tmp_path, tiny_model_of):
    if not cluster.separate:
        pytest.skip("needs two network namespaces (root and ip netns): on one loopback every address is reachable")
    # Node a as the app reaches it here, at 127.0.0.1: node b's 127.0.0.1 is node b itself.
    a = node(cluster.a_loopback, "node a", "")
    b = node(cluster.b, "node b", cluster.interface_b)
    ctx = context(cluster, tmp_path, a, b)
    data = make_dataset(tmp_path / "data", "txt")
    config = write_config(tmp_path / "configs" / "c.yaml", tiny_model_of("sd1").single_file, data, tmp_path / "runs" / "r")
    started = time.monotonic()
    outcome = preflight_nodes([a, b], config, ctx)
    assert time.monotonic() - started < 60  # a check, not torchrun's ten-minute rendezvous timeout
    assert not outcome.started and not outcome.report.ok
    failed = [c for c in outcome.report.checks if c.status == "error"]
    assert [c.name for c in failed] == ["rendezvous"], outcome.report.summary()
    port = failed[0].message.split("port ")[1].split(")")[0]
    assert port.isdigit() and f"127.0.0.1:{port}" in failed[0].message
    assert failed[0].message.startswith(f"node b ({cluster.b.host}) cannot reach") and "refused" in failed[0].message
    assert "127.0.0.1" in failed[0].hint and port in failed[0].hint and "not localhost" in failed[0].hint
    assert not (tmp_path / "runs" / "r" / "run.json").exists()  # nothing started


def test_a_missing_network_interface_is_named_with_those_the_node_has(cluster, tmp_path):
    good = node(cluster.b, "node b", cluster.interface_b)
    bad = node(cluster.b, "node b", "nope0")
    ctx = context(cluster, tmp_path, good)
    with open_shell(good, ctx) as shell:
        report = PreflightReport("b")
        assert check_interface(NodeShell(good, shell), report)
        assert not check_interface(NodeShell(bad, shell), report)
    [error] = [c for c in report.checks if c.status == "error"]
    assert "has no network interface nope0" in error.message and cluster.interface_b in error.message


def test_the_torchrun_command_and_what_cannot_be_a_node(tmp_path):
    target = SshTarget(name="gpu 1", host="10.0.0.5", user="me", python="'/opt/my venv/bin/python' -X utf8",
                       network_interface="eth1")
    mapped = MappedJob(["train", "--config", "/data/runs/a b; x/config.yaml"], "/data/runs/a b; x",
                       tmp_path, "/data/runs/a b; x/config.yaml")
    argv = torchrun_argv(target, mapped, nnodes=2, nproc=4, endpoint="10.0.0.5:29500", rdzv_id="r-1",
                         max_restarts=3, local_addr="10.0.0.5", is_host=True)
    assert argv[:5] == ["/opt/my venv/bin/python", "-X", "utf8", "-m", "torch.distributed.run"]
    flags = dict(zip(argv[5:-4:2], argv[6:-4:2]))
    assert flags == {"--nnodes": "2", "--nproc-per-node": "4", "--rdzv-backend": "c10d",
                     "--rdzv-endpoint": "10.0.0.5:29500", "--rdzv-id": "r-1", "--rdzv-conf": "is_host=1",
                     "--max-restarts": "3", "--local-addr": "10.0.0.5"}
    assert argv[-5:] == ["-m", "trainer", "train", "--config", "/data/runs/a b; x/config.yaml"]
    assert node_env(target) == {"NCCL_SOCKET_IFNAME": "eth1", "GLOO_SOCKET_IFNAME": "eth1",
                                "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    assert node_env(SshTarget(name="x", host="h", user="u")) == {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    vm = VSphereTarget(name="vm", vcenter="vc", vm="vm", launch="guest_ops", guest_user="g")
    problems = target_problems([target, target, LocalTarget(), vm])
    assert [m for m, _ in problems] == ["gpu 1 is chosen twice", "This computer cannot be a node of a multi-node run",
                                        "vm starts the trainer through Guest Operations"]
    # run.json's placement survives a round trip and tolerates fields of a newer app.
    placement = Placement((Node("a", "h1", 1, 2, "train.log"), Node("b", "h2", 3, 2, "train.node2.log")), "h1:5", "r", 3)
    data = placement.to_json()
    data["nodes"][0]["future"] = 1
    assert Placement.from_json(data) == placement and placement.world_size == 4
    assert placement.describe() == "2 nodes × 2 processes" and Placement.from_json({"nodes": []}) is None
