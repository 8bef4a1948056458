"""The config a lost run starts again from, on whichever target takes it.

A run folder's ``config.yaml`` holds the paths as the target it ran on sees them (``/data/lora/...``).
Another target may see the share elsewhere, and the launch maps the desktop's paths, not a
target's: so the paths are mapped back to this desk's view through the old target's mappings,
the output folder is the run folder as this desk sees it, and ``resume: auto`` makes the
trainer continue from the newest complete checkpoint in it. The result is written beside it as
``restart-config.yaml``; the launch then writes ``config.yaml`` for the new target, as for any start.
"""

from __future__ import annotations

from pathlib import Path

from trainer.config import config_to_yaml
from trainer.fsutil import atomic_write_text
from trainer.rundir import CONFIG_FILE

from ..targets.model import Target
from ..targets.pathmap import PathMapper
from ..targets.prepare import load_for_launch, path_options

RESTART_CONFIG = "restart-config.yaml"


def restart_config(run_dir: Path, old_target: Target | None, desk: str) -> Path:
    """Write ``restart-config.yaml`` for the run of ``run_dir`` (lost on ``old_target``); returns its path.

    Raises TargetConfigError when the run's config.yaml is not a valid config.
    """
    values = load_for_launch(run_dir / CONFIG_FILE)
    mapper = old_target.mapper() if old_target is not None else PathMapper()
    for name in path_options():
        if values.get(name):
            values[name] = mapper.to_local(str(values[name]))
    values["output_dir"] = str(run_dir)
    values["resume"] = "auto"  # the newest complete checkpoint of the run folder, whoever wrote it
    header = (f"Written by LoRA Studio on {desk} to start the lost run {run_dir.name} again.\n"
              "Paths are as this desk sees them; the launch maps them for the target that takes the run.")
    path = run_dir / RESTART_CONFIG
    atomic_write_text(path, config_to_yaml(values, header))
    return path
