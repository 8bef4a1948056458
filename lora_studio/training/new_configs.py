"""Where a new config goes and what it starts with: New Training (a dataset) and Train again (a run's
settings, from the Runs page).

A run folder's ``config.yaml`` is the trainer's resolved copy: every option explicit, paths absolute
as the machine that trained saw them. Its settings as a new config keep the options that differ from
the defaults, with paths that exist here made relative to ``configs/`` again (the workspace moves
with its configs), and leave out ``resume`` and ``output_dir``: the new config is a new run, with a
folder of its own beside the old one, not the old run continued.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from trainer.config.loader import parse_yaml
from trainer.config.migrate import migrate
from trainer.config.schema import OPTIONS_BY_NAME, SCHEMA_VERSION, defaults
from trainer.rundir import CONFIG_FILE

from .option_editors import relative_to
from .presets import same_value

NOT_CARRIED = frozenset({"resume", "output_dir"})  # a new run: its own folder, nothing to resume from


def config_name(text: str) -> str:
    """A name fit for a config file and a run folder (``my style 2`` -> ``my-style-2``)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "lora"


def free_config_path(configs: Path, name: str) -> Path:
    """``configs/<name>.yaml``, or ``<name>-2.yaml``, ``-3`` … when that file exists."""
    path, counter = configs / f"{name}.yaml", 2
    while path.exists():
        path, counter = configs / f"{name}-{counter}.yaml", counter + 1
    return path


def fresh_output_dir(runs: Path, name: str, configs: Path) -> str:
    """A new run folder ``<runs>/<name>-<date>-<time>`` (``-2`` … when two start in the same minute),
    as the config in ``configs`` names it."""
    stem = f"{name}-{time.strftime('%Y%m%d-%H%M')}"
    folder, counter = runs / stem, 2
    while folder.exists():
        folder, counter = runs / f"{stem}-{counter}", counter + 1
    return relative_to(folder, configs, allow_parent=True)


def settings_of_run(run_dir: Path, configs: Path) -> dict[str, Any]:
    """The options of the run in ``run_dir`` for a new config in ``configs`` (see the module's note).

    Raises ValueError with a message for the user when the run has no readable config.
    """
    path = run_dir / CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{path} is not there: this run was not started with a config (or it was moved), "
                         "so its settings are unknown. Start a New Training instead.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} cannot be read ({exc}). Start a New Training instead.") from None
    raw, problems = parse_yaml(text, str(path))
    if problems:
        raise ValueError(f"{problems[0]}. Or start a New Training instead.")
    if not isinstance(raw, dict):
        raise ValueError(f"{path} does not hold settings (a mapping of option: value). Start a New Training instead.")
    version = raw.pop("schema_version", SCHEMA_VERSION)
    migrate(raw, version if isinstance(version, int) and version <= SCHEMA_VERSION else SCHEMA_VERSION)
    start = defaults()
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in OPTIONS_BY_NAME or name in NOT_CARRIED or same_value(name, value, start.get(name)):
            continue  # unknown keys are the validator's to report in the old file, not to copy
        values[name] = _here(value, configs) if OPTIONS_BY_NAME[name].type == "path" else value
    return values


def _here(value: Any, configs: Path) -> Any:
    """A path of the run's machine, relative to ``configs`` when it exists here; else as it was."""
    if not isinstance(value, str) or not value or not os.path.isabs(value) or not os.path.exists(value):
        return value
    return relative_to(Path(value), configs, allow_parent=True)
