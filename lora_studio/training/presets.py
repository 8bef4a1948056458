"""Presets: partial configs that set a starting point (built-in ones and the user's own).

Built-in presets live in `resources/presets/`; a user's presets live in the workspace
(`.lora_studio/presets/`), so everyone on the shared storage sees them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from trainer.config.schema import OPTIONS_BY_NAME
from trainer.fsutil import atomic_write_text

from ..paths import resources_dir

DESCRIPTION_KEY = "preset_description"
USER_PRESETS = Path(".lora_studio") / "presets"


@dataclass(frozen=True)
class Preset:
    """A named set of option values."""

    name: str
    description: str
    values: dict[str, Any]
    path: Path
    builtin: bool


def _load(path: Path, builtin: bool) -> Preset | None:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None  # a broken user preset must not hide the others
    if not isinstance(data, dict):
        return None
    description = str(data.pop(DESCRIPTION_KEY, path.stem))
    values = {k: v for k, v in data.items() if k in OPTIONS_BY_NAME}
    return Preset(path.stem, description, values, path, builtin)


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


def save_user_preset(workspace: Path, name: str, description: str, values: dict[str, Any]) -> Path:
    """Save ``values`` as a workspace preset; paths are left out (they belong to one data set)."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "preset"
    path = workspace / USER_PRESETS / f"{slug}.yaml"
    kept = {k: v for k, v in values.items() if OPTIONS_BY_NAME[k].type != "path"}
    text = yaml.safe_dump({DESCRIPTION_KEY: description, **kept}, sort_keys=False, allow_unicode=True)
    atomic_write_text(path, text)
    return path
