"""Automatic recovery of lost runs (torch-free, Qt-free).

A run is `lost` when its heartbeat is stale and its process is gone (a VM or host died).
With auto-recovery on, it is started again on its target; the trainer then resumes from the
newest complete checkpoint by itself. Each attempt is recorded in the run's events, at most
`max_attempts` times, so a run that keeps dying does not loop forever.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from trainer.fsutil import atomic_write_text
from trainer.rundir import CONFIG_FILE, EVENTS_FILE

from ..targets.api import LaunchOutcome, TargetContext, launch
from ..targets.runinfo import read_run_info
from ..targets.runs import RunSummary
from .series import read_events

SETTINGS_FILE = "recovery.json"


@dataclass
class RecoverySettings:
    """Per-run choice, kept in the run folder so every desktop watching the run agrees."""

    enabled: bool = False
    max_attempts: int = 3


def load_settings(run_dir: Path) -> RecoverySettings:
    try:
        data = json.loads((run_dir / SETTINGS_FILE).read_text(encoding="utf-8"))
        return RecoverySettings(bool(data.get("enabled")), int(data.get("max_attempts", 3)))
    except (OSError, ValueError, TypeError):
        return RecoverySettings()


def save_settings(run_dir: Path, settings: RecoverySettings) -> None:
    atomic_write_text(run_dir / SETTINGS_FILE, json.dumps(asdict(settings)) + "\n")


def attempts(run_dir: Path) -> int:
    """Recoveries already made for this run (from its events)."""
    return sum(1 for e in read_events(run_dir / EVENTS_FILE) if e.get("kind") == "recovery")


def should_recover(summary: RunSummary) -> bool:
    """Lost, recovery on, and attempts left."""
    if summary.state != "lost" or not summary.resumable:
        return False
    settings = load_settings(summary.path)
    return settings.enabled and attempts(summary.path) < settings.max_attempts


def source_config(run_dir: Path) -> Path:
    """The config to launch again: the desktop's original when run.json names it, else the run's own."""
    info = read_run_info(run_dir)
    original = (info.extra or {}).get("source_config") if info else None
    if original and Path(original).is_file():
        return Path(original)
    return run_dir / CONFIG_FILE


def recover(run_dir: Path, ctx: TargetContext, workspace: Path | None, target_name: str | None = None,
            reason: str = "automatic recovery") -> LaunchOutcome:
    """Start a lost (or stopped) run again on its target or on ``target_name``; the trainer resumes.

    The attempt goes into events.jsonl before the launch, so the plot can mark it even when
    the launch itself fails.
    """
    info = read_run_info(run_dir)
    name = target_name or (info.target_name if info else ctx.settings.targets[0].name)
    target = ctx.settings.target(name)
    record_event(run_dir, "recovery", attempt=attempts(run_dir) + 1, target=name, reason=reason)
    return launch(target, source_config(run_dir), ctx, workspace=workspace)


def record_event(run_dir: Path, kind: str, **fields) -> None:
    """Append an event for a run whose trainer is not running (recovery attempts, their failures)."""
    with open(run_dir / EVENTS_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"time": time.time(), "kind": kind, **fields}) + "\n")


def resume_from_checkpoint(run_dir: Path, checkpoint: Path, ctx: TargetContext, workspace: Path | None) -> LaunchOutcome:
    """Start the run again from ``checkpoint`` (an older one than the newest, say).

    The trainer writes `resume: auto` into the run's config.yaml once it has resumed, so a
    later recovery continues from the run's newest checkpoint, not from this one again.
    """
    import yaml
    from trainer.config.yaml_edit import update_yaml_text
    source = source_config(run_dir)
    text = source.read_text(encoding="utf-8")
    values = yaml.safe_load(text) or {}
    values["resume"] = str(checkpoint)
    chosen = run_dir / "resume-config.yaml"
    atomic_write_text(chosen, update_yaml_text(text, values))
    info = read_run_info(run_dir)
    target = ctx.settings.target(info.target_name) if info else ctx.settings.targets[0]
    return launch(target, chosen, ctx, workspace=workspace)
