"""Getting a run folder ready for a target: the config with every path mapped, as config.yaml.

The desktop's config names paths as the desktop sees them; the target must see them at
its own mount point. Every option of type ``path`` (and an explicit ``resume`` folder) is
rewritten through the target's :class:`PathMapper`, and the result is written, with every
option explicit, to ``<run>/config.yaml`` on the shared storage, where the target reads it.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.config import OPTIONS, config_to_yaml, load_config
from trainer.fsutil import atomic_write_text
from trainer.rundir import ACTIVE_STATES, CONFIG_FILE

from .errors import TargetConfigError
from .model import Target


@dataclass(frozen=True)
class PreparedRun:
    """A run folder ready for launch, with its paths on both sides."""

    source_config: Path
    local_run_dir: Path
    target_run_dir: str
    target_config: str
    values: dict[str, Any] = field(repr=False)          # the mapped config, as the target sees it
    local_paths: dict[str, str] = field(repr=False)     # path options as the desktop sees them


def path_options() -> list[str]:
    """Names of the config options that hold paths."""
    return [o.name for o in OPTIONS if o.type == "path"]


def map_config(values: dict[str, Any], target: Target) -> dict[str, Any]:
    """A copy of a resolved config with every path as ``target`` sees it."""
    mapper = target.mapper()
    mapped = dict(values)
    for name in path_options():
        if mapped.get(name):
            mapped[name] = mapper.to_target(str(mapped[name]), what=name)
    if mapped.get("resume") not in (None, "auto", "never"):
        mapped["resume"] = mapper.to_target(str(mapped["resume"]), what="resume")
    return mapped


def load_for_launch(config_path: Path | str) -> dict[str, Any]:
    """The config's values with relative paths resolved (paths are checked later, on the target)."""
    config, problems = load_config(config_path, check_paths=False)
    if config is None:
        errors = "; ".join(str(p) for p in problems if p.severity == "error")
        raise TargetConfigError(f"the config is not valid: {errors}", "fix the config in the training form and start again")
    return dict(config)


def _refuse_running(run_dir: Path) -> None:
    """Never rewrite the config of a run that is still going (a lost one may start again)."""
    from .runs import summarize_run  # it knows a dead local process at once, a remote one by its heartbeat
    summary = summarize_run(run_dir)
    if summary.state in (*ACTIVE_STATES, "launched"):
        raise TargetConfigError(f"the run in {run_dir} is still {summary.state} (step {summary.step}, "
                                f"on {summary.host})", "stop it first, or choose another output folder")


def prepare_run(config_path: Path | str, target: Target) -> PreparedRun:
    """Map the config's paths for ``target`` and write it to ``<output_dir>/config.yaml``."""
    source = Path(config_path).resolve()
    values = load_for_launch(source)
    mapped = map_config(values, target)
    local_run_dir = Path(values["output_dir"])
    _refuse_running(local_run_dir)
    target_run_dir = str(mapped["output_dir"])
    join = posixpath.join if target.kind != "local" or target.mappings else lambda *p: str(Path(*p))
    target_config = join(target_run_dir, CONFIG_FILE)
    local_run_dir.mkdir(parents=True, exist_ok=True)
    header = (f"Written by LoRA Studio for target {target.name!r} from {source}.\n"
              f"Paths are as the target sees them. Run it there with:\n  python -m trainer train --config {target_config}")
    atomic_write_text(local_run_dir / CONFIG_FILE, config_to_yaml(mapped, header))
    local_paths = {n: str(values[n]) for n in path_options() if values.get(n)}
    return PreparedRun(source, local_run_dir, target_run_dir, target_config, mapped, local_paths)
