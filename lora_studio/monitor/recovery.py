"""Resume from the Runs page: start a stopped, failed or lost run again, on its target or another one
(torch-free, Qt-free).

Automatic recovery, a lost run started again by itself on its VM or another, is
:mod:`lora_studio.fleet.recovery_pass`; the per-run settings it reads are re-exported here for the page.
The trainer resumes from the newest complete checkpoint by itself; each start is recorded in the
run's events (``recovery``), so the plot marks it. A run over several nodes starts again on all of
them (torchrun on each, with the processes it had), unless the user picks one other target.
"""

from __future__ import annotations

from pathlib import Path

from trainer.fsutil import atomic_write_text

from ..fleet.claim import this_desk
from ..fleet.recovery_settings import RecoverySettings, attempts, load_settings, record_event, save_settings
from ..fleet.restart_config import restart_config
from ..targets.api import LaunchOutcome, TargetContext, launch
from ..targets.model import Target
from ..targets.multinode import relaunch_nodes
from ..targets.placement import Placement, placement_of, run_targets
from ..targets.runinfo import read_run_info

__all__ = ["RecoverySettings", "attempts", "load_settings", "record_event", "recover", "resume_from_checkpoint",
           "save_settings"]


def _old_target(run_dir: Path, ctx: TargetContext) -> Target | None:
    """The target the run last ran on, as this desk has it (its mappings say where the run's paths are)."""
    info = read_run_info(run_dir)
    return next((t for t in ctx.settings.targets if info is not None and t.name == info.target_name), None)


def recover(run_dir: Path, ctx: TargetContext, workspace: Path | None, target_name: str | None = None,
            reason: str = "resumed by the user") -> LaunchOutcome:
    """Start a lost (or stopped) run again on its target or on ``target_name``; the trainer resumes.

    The attempt goes into events.jsonl before the launch, so the plot can mark it even when
    the launch itself fails.
    """
    info = read_run_info(run_dir)
    placement = placement_of(info)
    source = " + ".join(run_targets(info))  # its target, or its nodes: "gpu-a + gpu-b"
    name = target_name or source or ctx.settings.targets[0].name
    config = restart_config(run_dir, _old_target(run_dir, ctx), this_desk())  # paths as this desk sees them
    record_event(run_dir, "recovery", attempt=attempts(run_dir) + 1, target=name, reason=reason,
                 **{"from": source, "to": name})
    return _launch_again(run_dir, config, ctx, workspace, target_name, None if target_name else placement)


def resume_from_checkpoint(run_dir: Path, checkpoint: Path, ctx: TargetContext, workspace: Path | None) -> LaunchOutcome:
    """Start the run again from ``checkpoint`` (an older one than the newest, say).

    The trainer writes `resume: auto` into the run's config.yaml once it has resumed, so a
    later recovery continues from the run's newest checkpoint, not from this one again.
    """
    import yaml
    from trainer.config.yaml_edit import update_yaml_text
    source = restart_config(run_dir, _old_target(run_dir, ctx), this_desk())
    text = source.read_text(encoding="utf-8")
    values = yaml.safe_load(text) or {}
    values["resume"] = str(checkpoint)
    chosen = run_dir / "resume-config.yaml"
    atomic_write_text(chosen, update_yaml_text(text, values))
    return _launch_again(run_dir, chosen, ctx, workspace, None, placement_of(read_run_info(run_dir)))


def _launch_again(run_dir: Path, config: Path, ctx: TargetContext, workspace: Path | None, target_name: str | None,
                  placement: Placement | None) -> LaunchOutcome:
    """Launch ``config`` on ``target_name``, else on the run's own target, or on all of ``placement``'s nodes
    (with their processes each, so the run goes on as it was: the same ranks, the same batches)."""
    if placement is not None:
        return relaunch_nodes(placement, config, ctx, workspace=workspace)
    info = read_run_info(run_dir)
    name = target_name or (info.target_name if info else ctx.settings.targets[0].name)
    return launch(ctx.settings.target(name), config, ctx, workspace=workspace)
