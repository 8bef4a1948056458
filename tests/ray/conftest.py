"""A real Ray head on loopback for the Ray target tests, started once for them and ended after the last.

``ray start --head`` runs with a temporary folder of its own, every port it would take by
default chosen free, two CPUs and no GPU (so a run asking one GPU waits in Ray's queue), and a
small object store (the machine is shared). Its processes form a session of their own; the
teardown ends that session's processes by id (never ``ray stop``, which ends every Ray on the
machine) and checks that none is left.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from PIL import Image

from tests.cli_helpers import free_port

RAY = Path(sys.executable).with_name("ray")
COLOURS = ("red", "blue", "green", "yellow")


@dataclass(frozen=True)
class RayHead:
    """A running Ray head: its dashboard's address (the Jobs API) and its session."""

    address: str
    session_id: int
    temp_dir: Path


def _session_processes(session_id: int) -> list[int]:
    """Pids of the processes of session ``session_id`` (the Ray head's daemons and workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session_id and fields[0] != "Z":  # fields[3] is the session id, [0] the state
            found.append(int(entry.name))
    return found


def _wait_ready(address: str, log: Path, deadline_s: float = 90) -> None:
    from lora_studio.targets.ray_client import RayJobsClient
    client = RayJobsClient(address)
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            client.version()
            if client.nodes():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"the Ray head did not answer at {address}:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)


def _end_session(session_id: int) -> list[int]:
    """SIGTERM the session's processes, SIGKILL what is left after a while; returns what survived."""
    # gcs_server and the raylet take their time over SIGTERM; a test head has nothing to save.
    for sig, wait_s in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 10.0)):
        for pid in _session_processes(session_id):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait_s
        while _session_processes(session_id) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not _session_processes(session_id):
            return []
    return _session_processes(session_id)


# Package scope: the head (over a GiB of memory) goes once the tests of this folder are done, not
# at the end of the whole suite.
@pytest.fixture(scope="package")
def ray_head() -> RayHead:
    """``ray start --head`` on 127.0.0.1 with free ports; yields its address, ends it after this folder's tests."""
    if not RAY.exists():
        pytest.skip(f"{RAY} is missing: pip install 'ray[default]' (the test extra: pip install -e '.[test]')")
    # Short: Ray's unix sockets live under it, and a socket path may have at most 107 characters.
    temp_dir = Path(tempfile.mkdtemp(prefix="lsray-", dir="/tmp"))
    dashboard = free_port()
    env = {**os.environ,
           # Ray takes the machine's own address for a head unless told it is a single machine: keep it on loopback.
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    argv = [str(RAY), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={free_port()}",
            "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", "--include-dashboard=true",
            f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
            "--num-cpus=2", "--num-gpus=0", "--object-store-memory=100000000", f"--temp-dir={temp_dir}",
            "--disable-usage-stats"]
    log = temp_dir / "ray-start.log"
    with open(log, "ab") as out:
        starter = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                   start_new_session=True)  # its daemons stay in this session: ended by it
    session_id = starter.pid
    try:
        if starter.wait(120) != 0:
            pytest.fail(f"ray start failed:\n{log.read_text(errors='replace')[-3000:]}")
        address = f"http://127.0.0.1:{dashboard}"
        _wait_ready(address, log)
        yield RayHead(address, session_id, temp_dir)
    finally:
        left = _end_session(session_id)
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not left, f"Ray processes survived the teardown: {left}"


def write_dataset(folder: Path) -> Path:
    """Four small one-colour images with kohya .txt captions."""
    folder.mkdir(parents=True, exist_ok=True)
    for colour in COLOURS:
        Image.new("RGB", (64, 64), colour).save(folder / f"{colour}.png")
        (folder / f"{colour}.txt").write_text(f"a {colour} square\n", encoding="utf-8")
    return folder


@dataclass(frozen=True)
class RayWorkspace:
    """A workspace with the tiny SD model's file and a dataset; :meth:`config` writes a run's config."""

    root: Path
    base_model: Path

    def config(self, name: str, **overrides) -> Path:
        """``configs/<name>.yaml`` for a run in ``runs/<name>`` (tiny, on the CPU, LoRA file ``lora``)."""
        values = {"train_data_dir": "../data", "base_model": str(self.base_model), "output_dir": f"../runs/{name}",
                  "output_name": "lora", "resolution": 64, "min_bucket_reso": 32, "max_bucket_reso": 128,
                  "bucket_reso_steps": 32, "lora_rank": 4, "batch_size": 2, "max_train_steps": 4,
                  "learning_rate": 1e-2, "save_steps": 100000, "sample_every_n_steps": 0, "seed": 3, **overrides}
        path = self.root / "configs" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
        return path


@pytest.fixture(scope="package")
def ray_workspace(tmp_path_factory, tiny_model_of) -> RayWorkspace:
    """The tiny SD 1.x model (``tiny_model_of("sd1")``) and a four-image dataset in a fresh workspace."""
    root = tmp_path_factory.mktemp("ray-ws")
    write_dataset(root / "data")
    return RayWorkspace(root, tiny_model_of("sd1").base_model)
