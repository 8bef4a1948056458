"""Helpers for the targets tests: copies of the demo workspace, configs, waiting on run state."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import yaml

from trainer.rundir import read_status

ROOT = Path(__file__).resolve().parents[2]
# Small and quick: no sampling, no checkpoints unless asked; steps set per test.
FAST = {"sample_every_n_steps": 0, "save_steps": 100000, "epochs": 100}


def copy_workspace(source: Path, dest: Path) -> Path:
    """A copy of a demo workspace (datasets, models, no runs)."""
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("runs", ".lora_cache"), symlinks=True)
    return dest


def write_config(workspace: Path, name: str, output_dir: str, **overrides) -> Path:
    """A config in ``workspace/configs`` based on the demo's, with relative paths and overrides."""
    values = yaml.safe_load((workspace / "configs" / "demo.yaml").read_text(encoding="utf-8"))
    values.pop("sample_prompts", None)
    values.update({**FAST, **overrides, "output_dir": f"../{output_dir}"})
    path = workspace / "configs" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def wait_for(predicate, timeout: float, what: str, poll: float = 0.3):
    """Poll ``predicate`` until it returns a truthy value; fail the test with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def wait_state(run_dir: Path, states: tuple[str, ...], timeout: float = 120, min_step: int = 0) -> dict:
    """Wait until status.json is in one of ``states`` (and at ``min_step`` or later); returns it."""
    def ready():
        status = read_status(run_dir)
        if status and status.get("state") in states and int(status.get("step") or 0) >= min_step:
            return status
        if status and status.get("state") == "failed":
            raise AssertionError(f"run failed: {status.get('error')}\n{tail_log(run_dir)}")
        return None
    try:
        return wait_for(ready, timeout, f"{run_dir.name} to reach {states} at step >= {min_step}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nstatus: {read_status(run_dir)}\n{tail_log(run_dir)}") from None


def tail_log(run_dir: Path, lines: int = 30) -> str:
    """The end of a run's train.log (for failure messages)."""
    try:
        return "\n".join((run_dir / "train.log").read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no train.log)"


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
