"""``run.json``: where and how a run was started (written by the launcher, read to re-attach)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from trainer.fsutil import atomic_write_text
from trainer.rundir import RUN_FILE, read_status


@dataclass(frozen=True)
class RunInfo:
    """The launch record of a run. No secrets: only names, hosts, pids and the command."""

    target_kind: str            # local | ssh | vsphere
    target_name: str
    host: str                   # the machine the trainer runs on (host name or IP)
    pid: int
    command: list[str]          # argv of the trainer as started on the target
    started_at: float
    app_version: str
    launch: str                 # subprocess | ssh | guest_ops
    run_dir: str                # the run folder as the target sees it
    config: str                 # config.yaml as the target sees it
    vm: str = ""                # the VM's name for vSphere targets
    vcenter: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # status.json's heartbeat when this start was made (0.0: there was none), so that a reader can
    # tell the new trainer's status from the one before it without comparing two machines' clocks.
    # None: written by an app that did not record it.
    heartbeat_before: float | None = None


@dataclass(frozen=True)
class StartMoment:
    """When the app started a trainer, by its own clock, and the heartbeat the run folder held then."""

    at: float
    heartbeat_before: float


def start_moment(local_run_dir: Path | str) -> StartMoment:
    """Take the moment just before a trainer is started in ``local_run_dir`` (see RunInfo.heartbeat_before)."""
    heartbeat = (read_status(local_run_dir) or {}).get("heartbeat")
    return StartMoment(time.time(), float(heartbeat) if isinstance(heartbeat, (int, float)) else 0.0)


def write_run_info(local_run_dir: Path | str, info: RunInfo) -> Path:
    """Write ``run.json`` into the run folder atomically; returns its path."""
    path = Path(local_run_dir) / RUN_FILE
    atomic_write_text(path, json.dumps(asdict(info), indent=1, ensure_ascii=False) + "\n")
    return path


def read_run_info(local_run_dir: Path | str) -> RunInfo | None:
    """The run's ``run.json``, or None when missing or unreadable (fields of newer apps are ignored)."""
    try:
        data = json.loads((Path(local_run_dir) / RUN_FILE).read_text(encoding="utf-8"))
        known = {f.name for f in fields(RunInfo)}
        return RunInfo(**{k: v for k, v in data.items() if k in known})
    except (OSError, ValueError, TypeError):
        return None
