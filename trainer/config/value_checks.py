"""One option's value, checked on its own (torch-free): turned into the option's type, held
against its bounds, and for a path resolved and looked for on disk; with the hint that
says what to write instead. The rules between several options are in :mod:`.cross_checks`.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

from trainer.config.schema import Option


def describe_bounds(option: Option) -> str:
    """The option's bounds in words, e.g. ">= 1 and <= 100"."""
    parts = []
    if option.minimum is not None:
        parts.append(f"{'>' if option.exclusive_minimum else '>='} {option.minimum:g}")
    if option.maximum is not None:
        parts.append(f"{'<' if option.exclusive_maximum else '<='} {option.maximum:g}")
    return " and ".join(parts)


def coerce(option: Option, value: Any) -> tuple[Any, str | None]:
    """Turn a YAML value into the option's type; returns (value, error message or None)."""
    kind = option.type
    if kind == "bool":
        if isinstance(value, bool):
            return value, None
        if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "false", "no", "off"):
            return value.strip().lower() in ("true", "yes", "on"), None
        return None, f"must be true or false (got {value!r})"
    if kind == "int":
        if isinstance(value, bool):
            return None, f"must be a whole number (got {value!r})"
        if isinstance(value, int):
            return value, None
        if isinstance(value, float) and value.is_integer():
            return int(value), None
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                pass
            else:
                if number.is_integer():
                    return int(number), None
        return None, f"must be a whole number (got {value!r})"
    if kind == "float":
        if isinstance(value, bool):
            return None, f"must be a number (got {value!r})"
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):
            # YAML 1.1 reads `2e-4` (no dot) as a string; accept it as the number it means.
            try:
                number = float(value.strip())
            except ValueError:
                return None, f"must be a number such as 1e-4 (got {value!r})"
        else:
            return None, f"must be a number (got {value!r})"
        if not math.isfinite(number):
            return None, f"must be a finite number (got {value!r})"
        return number, None
    if kind in ("str", "path"):
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value), None
        return None, f"must be a {'path' if kind == 'path' else 'text value'} (got {value!r})"
    if kind == "choice":
        if option.bool_means is not None and (isinstance(value, bool) or str(value).lower() in ("true", "false")):
            return option.bool_means[value is True or str(value).lower() == "true"], None
        if isinstance(value, bool):
            # YAML 1.1 reads an unquoted `off`/`no` as false and `on`/`yes` as true.
            spellings = ("on", "yes", "true") if value else ("off", "no", "false")
            value = next((v for v in option.choice_values() if v in spellings), value)
        text = str(value)
        values = option.choice_values()
        for allowed in values:
            if text.lower() == allowed.lower():
                return allowed, None
        return None, f"{value!r} is not one of: {', '.join(values)}"
    if kind == "str_list":
        if isinstance(value, str):
            return [value], None
        if isinstance(value, list) and all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
            return [str(v) for v in value], None
        return None, "must be a list of text lines"
    raise AssertionError(f"unknown option type {kind}")


def check_bounds(option: Option, value: Any) -> str | None:
    """Why ``value`` is outside the option's bounds, or None (only numbers have bounds)."""
    if option.type not in ("int", "float"):
        return None
    too_low = option.minimum is not None and (
        value <= option.minimum if option.exclusive_minimum else value < option.minimum)
    too_high = option.maximum is not None and (
        value >= option.maximum if option.exclusive_maximum else value > option.maximum)
    if too_low or too_high:
        return f"must be {describe_bounds(option)} (got {value:g})"
    return None


def hint_for(option: Option) -> str:
    """What to write instead of a bad value: a choice's values with their meaning, else the option's help."""
    if option.type == "choice":
        return "use one of: " + "; ".join(f"{c.value} = {c.description.rstrip('.')}" for c in option.choices)
    return option.help


# vCenter's name for a file, "[vsanDatastore] lora/models/base.safetensors": copied from the vSphere Client or
# the datastore browser, it reads like a path but no program outside vCenter can open it.
DATASTORE_PATH = re.compile(r"^\[[^\]/\\]+\]\s")
DATASTORE_PATH_HINT = ("give the path where this computer or the VM mounts the datastore, such as /mnt/vsan/lora/...; "
                       "Training > Targets... > vSphere > Datastores > Copy path gives it for a target with a "
                       "path mapping")


def datastore_path_problem(value: str) -> str | None:
    """Why ``value`` is no path the trainer can open when it is a datastore path, else None."""
    if DATASTORE_PATH.match(value):
        return f"{value!r} is a datastore path (vCenter's name for the file), which no program can open"
    return None


def resolve_path(value: str, base_dir: Path | None) -> Path:
    """``value`` as a normalised path: ``~`` expanded, a relative one taken from ``base_dir`` when given."""
    path = Path(os.path.expanduser(value))
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return Path(os.path.normpath(path))


def check_path(option: Option, path: Path) -> str | None:
    """Why ``path`` does not do for an option that must exist (missing, or a file for a folder), or None."""
    if not option.must_exist:
        return None
    if not path.exists():
        return f"{path} does not exist"
    if option.path_kind == "dir" and not path.is_dir():
        return f"{path} is not a folder"
    if option.path_kind == "file" and not path.is_file():
        return f"{path} is not a file"
    return None
