"""Presets: partial configs that set a starting point (built-in ones and the user's own).

Built-in presets live in `resources/presets/`; a user's presets live in the workspace
(`.lora_studio/presets/`), so everyone on the shared storage sees them. A workspace preset
with `preset_for_new_trainings: true` is where New Training starts in that workspace (the
demo's is its 64 px settings); without one, New Training starts from the schema's defaults.
A config opened later is compared with the preset it is closest to (`closest_preset`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from trainer.config.schema import OPTIONS_BY_NAME, defaults
from trainer.demo_workspace import DEMO_SETTINGS, create_demo_workspace
from trainer.fsutil import atomic_write_text

from ..paths import resources_dir

DESCRIPTION_KEY = "preset_description"
FOR_NEW_TRAININGS_KEY = "preset_for_new_trainings"
DEMO_PRESET = "demo"
USER_PRESETS = Path(".lora_studio") / "presets"


@dataclass(frozen=True)
class Preset:
    """A named set of option values."""

    name: str
    description: str
    values: dict[str, Any]
    path: Path
    builtin: bool
    for_new_trainings: bool = False


def _load(path: Path, builtin: bool) -> Preset | None:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None  # a broken user preset must not hide the others
    if not isinstance(data, dict):
        return None
    description = str(data.pop(DESCRIPTION_KEY, path.stem))
    for_new = data.pop(FOR_NEW_TRAININGS_KEY, False) is True
    # A run's own options are dropped: a preset saved by an older app could hold an output name.
    values = {k: v for k, v in data.items() if k in OPTIONS_BY_NAME and not belongs_to_one_run(k)}
    return Preset(path.stem, description, values, path, builtin, for_new and not builtin)


def list_presets(workspace: Path | None) -> list[Preset]:
    """Built-in presets, then the workspace's, each sorted by name."""
    found = []
    for folder, builtin in ((resources_dir() / "presets", True),
                            (workspace / USER_PRESETS if workspace else None, False)):
        if folder is None or not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.yaml")):
            preset = _load(path, builtin)
            if preset is not None:
                found.append(preset)
    return found


# Options that name one run's files rather than how it trains: presets neither set nor compare them.
RUN_OWN_OPTIONS = frozenset({"output_name"})


def belongs_to_one_run(name: str) -> bool:
    """Whether option ``name`` is one run's own (its paths, its LoRA's name), left out of presets."""
    return OPTIONS_BY_NAME[name].type == "path" or name in RUN_OWN_OPTIONS


def same_value(name: str, a: Any, b: Any) -> bool:
    """Equal as the option's type sees it (YAML's `2e-4` text equals the number 0.0002)."""
    option = OPTIONS_BY_NAME.get(name)
    if option is not None and option.type == "float":
        try:
            return a is b or float(a) == float(b)
        except (TypeError, ValueError):
            return a == b
    if option is not None and option.type == "choice" and isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    return a == b


def differing_options(values: dict[str, Any], baseline: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Options whose value in ``values`` differs from ``baseline``: name -> (baseline's, its own).

    Both are complete (every option). A run's own options are left out: presets never set them.
    """
    return {name: (baseline[name], value) for name, value in values.items()
            if not belongs_to_one_run(name) and not same_value(name, value, baseline[name])}


def closest_preset(presets: list[Preset], values: dict[str, Any]) -> Preset | None:
    """The preset a config's ``values`` differ least from; None when the defaults are as close.

    A config does not record the preset it was started from, so an opened config is compared
    with the one it is nearest to: a demo config shows its few changes from the Demo preset,
    not a dozen from the defaults. A tie keeps the defaults, then the first listed preset.
    """
    full = {**defaults(), **values}
    best, fewest = None, len(differing_options(full, defaults()))
    for preset in presets:
        count = len(differing_options(full, {**defaults(), **preset.values}))
        if count < fewest:
            best, fewest = preset, count
    return best


def start_preset(presets: list[Preset]) -> Preset | None:
    """The workspace preset New Training starts from, if the workspace names one."""
    return next((p for p in presets if p.for_new_trainings), None)


def save_user_preset(workspace: Path, name: str, description: str, values: dict[str, Any],
                     for_new_trainings: bool = False) -> Path:
    """Save ``values`` as a workspace preset; a run's own options (paths, output name) are left out."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "preset"
    path = workspace / USER_PRESETS / f"{slug}.yaml"
    kept = {k: v for k, v in values.items() if not belongs_to_one_run(k)}
    head = {DESCRIPTION_KEY: description, **({FOR_NEW_TRAININGS_KEY: True} if for_new_trainings else {})}
    text = yaml.safe_dump({**head, **kept}, sort_keys=False, allow_unicode=True)
    atomic_write_text(path, text)
    return path


def create_demo(root: Path) -> Path:
    """Create (or complete) the demo workspace and its start preset; returns the demo config's path.

    The preset makes New Training in the demo start from the demo's 64 px settings, which
    finish in about a minute on a CPU, instead of the schema's 512 px defaults (hours there).
    """
    config = create_demo_workspace(root)
    if not (root / USER_PRESETS / f"{DEMO_PRESET}.yaml").exists():
        save_user_preset(root, DEMO_PRESET, "Demo: 64 px on the tiny model (about a minute on a CPU)", DEMO_SETTINGS,
                         for_new_trainings=True)
    return config
