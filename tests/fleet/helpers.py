"""Helpers for the queue tests: a workspace with configs, targets that are never contacted, a fake start."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import yaml

from lora_studio.fleet import StartResult
from lora_studio.targets.model import SshTarget
from trainer.demo_workspace import create_demo_workspace


def make_workspace(root: Path) -> Path:
    """The demo workspace (dataset and configs; no model: nothing here trains)."""
    create_demo_workspace(root, make_model=False)
    return root


def write_config(workspace: Path, name: str, **overrides) -> Path:
    """``configs/<name>.yaml``: the demo's config with its run in ``runs/<name>``."""
    values = yaml.safe_load((workspace / "configs" / "demo.yaml").read_text(encoding="utf-8"))
    values.update({**overrides, "output_dir": f"../runs/{name}"})
    path = workspace / "configs" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
    return path


def gpu_box(name: str, max_jobs: int = 1) -> SshTarget:
    """An SSH target that nothing in these tests connects to (the starts are stand-ins)."""
    return SshTarget(name=name, host=f"{name}.lab.example", user="trainer", max_jobs=max_jobs)


def pretend_running(run: Path, target: str, *, state: str = "training") -> Path:
    """A run folder whose files say it runs on ``target`` now (this process stands in for its trainer)."""
    run.mkdir(parents=True, exist_ok=True)
    now = time.time()
    status = {"state": state, "step": 3, "total_steps": 10, "heartbeat": now, "pid": os.getpid(),
              "host": socket.gethostname(), "started_at": now}
    (run / "status.json").write_text(json.dumps(status), encoding="utf-8")
    info = {"target_kind": "ssh", "target_name": target, "host": socket.gethostname(), "pid": os.getpid(),
            "command": ["python", "-m", "trainer"], "started_at": now, "app_version": "0", "launch": "ssh",
            "run_dir": str(run), "config": str(run / "config.yaml")}
    (run / "run.json").write_text(json.dumps(info), encoding="utf-8")
    return run


def finish(run: Path, state: str = "completed") -> None:
    """The run's trainer wrote its final state."""
    status = json.loads((run / "status.json").read_text(encoding="utf-8"))
    status.update(state=state, heartbeat=time.time())
    (run / "status.json").write_text(json.dumps(status), encoding="utf-8")


class RecordingStart:
    """A start that records what it was asked to start and answers ``result``; a started run's
    folder then says it runs there (as a launched trainer's would)."""

    def __init__(self, result=None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.result = result or StartResult(True)

    def __call__(self, entry, target) -> StartResult:
        self.calls.append((entry.name, target.name))
        if self.result.started:
            pretend_running(entry.run_dir, target.name)
        return self.result
