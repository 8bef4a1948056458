"""The fleet: queued runs sent to two SSH targets, and a lost run started again on the other one.

Measures, in one run, with the tiny SD model on the CPU and two real sshd servers started here
(``tests/targets/netns_hosts.py``: separate network namespaces when this machine allows, else both
on loopback), the runs sent by the app's own dispatcher (``lora_studio.fleet.dispatch``) and
restarted by its own recovery pass (``lora_studio.fleet.recovery_pass``):

- efficiency: the ideal makespan (the sum of the runs' own times, each from its start to its
  last status, over 2) over the makespan (from the first dispatch pass to the end of the last run)
  of ``--runs`` queued runs (target >= 0.9); makespan_s, ideal_s and run_s (the mean run time) with
  it; start_s is the mean time from the dispatcher's claim of a run to its start: the preflight
  (SSH login, doctor, validate) and the launch, or only the launch where the preflight was made
  ahead while the target's previous run ended (``lora_studio.fleet.ahead``; checked_ahead counts
  those starts: all but the first run of each target); slot_efficiency counts each run from the
  claim instead (how well the dispatcher keeps both targets busy, whatever a start costs);
- recovery_s: a run whose trainer SIGKILLs itself at a known step, on a target whose sshd is then
  gone (the machine died), from the kill to its first new step after the recovery pass started it
  again on the other target (target: the heartbeat threshold + 60 s); detect_s (the kill to the
  pass's ``recovery`` event) with it. On these machines the process table shows the death at
  once; a VM elsewhere is found by vCenter's power state at once, or by its heartbeat after
  heartbeat_threshold_s.

The dispatcher and the recovery pass run every ``--poll`` seconds (the app: every few seconds).

Usage: python bench/fleet.py [--quick] [--runs N] [--steps N] [--poll S] ; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from trainer_throughput import make_dataset  # noqa: E402  (bench helpers)

from lora_studio.fleet import StartsAhead  # noqa: E402
from trainer.rundir import local_pid_alive  # noqa: E402

ONE_THREAD = "env OMP_NUM_THREADS=1"  # two trainers share this machine's cores: one thread each
DESK = "bench@fleet"


def write_config(path: Path, model: Path, data: Path, out: Path, steps: int, save_steps: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([
        f"train_data_dir: {data}", f"base_model: {model}", f"output_dir: {out}", "output_name: lora",
        "resolution: 64", "enable_bucket: false", "batch_size: 1", f"max_train_steps: {steps}",
        f"save_steps: {save_steps}", "tensorboard: false", "learning_rate: 1e-3", "sample_every_n_steps: 0",
        "num_workers: 0",
    ]) + "\n", encoding="utf-8")
    return path


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def metrics(run_dir: Path) -> list[dict]:
    try:
        lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            pass  # a line being written
    return out


def figures(runs: list[Path], started_at: float) -> dict:
    """Efficiency of a finished queue: each run's own time (run.json's start to its last status), the makespan."""
    times, starts, ends = [], [], []
    for run_dir in runs:
        info, status = read_json(run_dir / "run.json"), read_json(run_dir / "status.json")
        claim = read_json(run_dir / "queue.claim")  # a started run keeps the dispatcher's claim: when it took it
        times.append(status["heartbeat"] - info["started_at"])
        starts.append(info["started_at"] - claim.get("time", info["started_at"]))
        ends.append(status["heartbeat"])
    makespan = max(ends) - started_at
    ideal = sum(times) / 2
    # The same with each run counted from the dispatcher's claim (its preflight included): how well
    # the dispatcher keeps both targets busy, whatever a start costs.
    slots = (sum(times) + sum(starts)) / 2
    return {"efficiency": round(ideal / makespan, 3), "makespan_s": round(makespan, 1), "ideal_s": round(ideal, 1),
            "run_s": round(sum(times) / len(times), 1), "start_s": round(sum(starts) / len(starts), 1),
            "slot_efficiency": round(slots / makespan, 3)}


def trusted_context(cluster, targets, folder: Path):
    """A context whose known_hosts trusts both servers (the bench is their only client)."""
    import paramiko

    from lora_studio.targets import TargetContext, TargetSettings
    from lora_studio.targets.ssh import trust_host_key
    known = folder / "known_hosts"
    for server in (cluster.a, cluster.b):
        kind, blob = server.host_key_pub.read_text().split()[:2]
        trust_host_key(known, server.host, server.port, paramiko.PKey.from_type_string(kind, base64.b64decode(blob)))
    return TargetContext(TargetSettings(targets=list(targets)), known)


def ssh_target(name: str, server, python: str):
    from lora_studio.targets import SshTarget
    return SshTarget(name=name, host=server.host, port=server.port, user=server.user, auth="key",
                     key_file=str(server.user_key), python=python)


class CountingAhead(StartsAhead):
    """The dispatcher's store of preflights made ahead, counting the starts that used one."""

    used = 0

    def take(self, entry, target, now=None):
        ready = super().take(entry, target, now)
        self.used += ready is not None
        return ready


def run_queue(workspace: Path, model: Path, data: Path, cluster, count: int, steps: int, poll: float) -> dict:
    """``count`` queued runs sent by the dispatcher to targets a and b until all have completed."""
    from lora_studio.fleet import Needs, ahead_preparer, dispatch, enqueue, queued_launcher
    targets = [ssh_target("a", cluster.a, f"{ONE_THREAD} {sys.executable}"),
               ssh_target("b", cluster.b, f"{ONE_THREAD} {sys.executable}")]
    ctx = trusted_context(cluster, targets, workspace.parent)
    runs = []
    for i in range(count):
        config = write_config(workspace / "configs" / f"q{i}.yaml", model, data, workspace / "runs" / f"q{i}", steps)
        enqueue(config, workspace, Needs(gpus=0), DESK)
        runs.append(workspace / "runs" / f"q{i}")
    ahead = CountingAhead()
    starter = queued_launcher(ctx, workspace, ahead=ahead)
    prepare = ahead_preparer(ctx, workspace, ahead)
    started_at = time.time()
    deadline = time.monotonic() + 120 + count * (30 + steps)
    while True:
        for outcome in dispatch(workspace, targets, starter, DESK, prepare=prepare):
            if outcome.kind == "failed":
                raise SystemExit(f"{outcome.run_dir.name}: {outcome.message}")
        states = [read_json(r / "status.json").get("state") for r in runs]
        if all(s == "completed" for s in states):
            return {**figures(runs, started_at), "checked_ahead": ahead.used}
        if "failed" in states or time.monotonic() > deadline:
            raise SystemExit(f"the queue did not complete: {dict(zip([r.name for r in runs], states))}")
        time.sleep(poll)


def run_recovery(workspace: Path, model: Path, data: Path, cluster, steps: int, poll: float, threshold: float) -> dict:
    """A run killed at a known step on target a, whose sshd then goes; the recovery pass moves it to b."""
    from lora_studio.fleet.recovery_pass import recovery_pass
    from lora_studio.fleet.recovery_settings import RecoverySettings, save_settings
    from lora_studio.targets import launch, read_run_info
    kill_step, save_steps = steps - 1, max(1, steps // 2)
    kill = f"LORA_TRAINER_KILL_AT=step:{kill_step} LORA_TRAINER_KILL_ONCE={workspace.parent / 'killed-once'}"
    targets = [ssh_target("a", cluster.a, f"{ONE_THREAD} {kill} {sys.executable}"),
               ssh_target("b", cluster.b, f"{ONE_THREAD} {sys.executable}")]
    ctx = trusted_context(cluster, targets, workspace.parent)
    run_dir = workspace / "runs" / "lost"
    config = write_config(workspace / "configs" / "lost.yaml", model, data, run_dir, steps, save_steps)
    outcome = launch(targets[0], config, ctx, workspace=workspace)
    if not outcome.started:
        raise SystemExit(outcome.report.summary())
    save_settings(run_dir, RecoverySettings(enabled=True, max_attempts=2, stale_after_s=threshold))
    deadline = time.monotonic() + 180
    while local_pid_alive(outcome.info.pid):
        if time.monotonic() > deadline:
            raise SystemExit("the trainer did not kill itself")
        time.sleep(0.02)
    killed_at = time.time()
    cluster.a.process.terminate()  # the machine is gone with it: its sshd no longer answers
    resumed_from = (kill_step - 1) // save_steps * save_steps
    deadline = time.monotonic() + 240
    moved = None
    while True:
        for result in recovery_pass(workspace, ctx, DESK):
            if result.kind == "started":
                moved = result
            elif result.kind in ("failed", "gave_up"):
                raise SystemExit(f"recovery {result.kind}: {result.message}")
        new = [m for m in metrics(run_dir) if m.get("step", 0) > resumed_from and m.get("time", 0) > killed_at]
        if new:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"no new step after the recovery: {read_json(run_dir / 'status.json')}")
        time.sleep(poll)
    event = next(e for e in map(json.loads, (run_dir / "events.jsonl").read_text().splitlines())
                 if e.get("kind") == "recovery")
    info = read_run_info(run_dir)
    return {"recovery_s": round(new[0]["time"] - killed_at, 1), "detect_s": round(event["time"] - killed_at, 1),
            "heartbeat_threshold_s": threshold, "recovered_on": info.target_name if info else "",
            "lost_because": moved.reason if moved else event.get("reason", "")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 runs of 2 steps (about a minute in all)")
    parser.add_argument("--runs", type=int, help="queued runs (default 8; 4 with --quick)")
    parser.add_argument("--steps", type=int, help="steps per run (default 400, about 20 s of training; 2 with --quick)")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between dispatch / recovery passes")
    parser.add_argument("--heartbeat-threshold", type=float, default=60.0, help="the runs' stale heartbeat threshold")
    args = parser.parse_args()
    count = args.runs or (4 if args.quick else 8)
    steps = args.steps or (2 if args.quick else 400)
    from tests.targets.netns_hosts import start_cluster
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp_name:
        tmp = Path(tmp_name)
        workspace = tmp / "share"
        # The tiny model is made while the servers start.
        making = subprocess.Popen([sys.executable, "-m", "trainer", "make-tiny-model", str(workspace / "models"),
                                   "--family", "sd1"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        data = workspace / "data"
        make_dataset(data, 4, 64)
        (tmp / "hosts").mkdir()
        cluster, stop = start_cluster(tmp / "hosts")
        try:
            if making.wait() != 0:
                raise SystemExit(making.stderr.read().decode(errors="replace"))
            model = next((workspace / "models").glob("*.safetensors"))
            result = {"runs": count, "steps": steps, "targets": 2, "separate_hosts": cluster.separate, "poll_s": args.poll}
            result.update(run_queue(workspace, model, data, cluster, count, steps, args.poll))
            result.update(run_recovery(workspace, model, data, cluster, min(max(steps, 4), 40), args.poll,
                                       args.heartbeat_threshold))
        finally:
            stop()
    print(f"{count} runs of {steps} steps on 2 targets: makespan {result['makespan_s']} s, ideal {result['ideal_s']} s "
          f"(efficiency {result['efficiency']}; each start {result['start_s']} s of preflight and launch); "
          f"a killed run made its next step {result['recovery_s']} s after the kill, on {result['recovered_on']} "
          f"(target: {args.heartbeat_threshold:.0f} + 60 s)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
