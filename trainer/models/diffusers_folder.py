"""Loading the parts of a diffusers model folder, offline, with pickles refused unless allowed.

Shared by the families whose base model can be a diffusers folder (``model_index.json``
with one sub-folder per part). Every failure is a :class:`ModelLoadError` naming the folder.
"""

from __future__ import annotations

from .offline import enable_offline_mode

enable_offline_mode()  # before diffusers/transformers are imported: they read it at import

import json  # noqa: E402
import re  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from .errors import ModelLoadError  # noqa: E402
from .ldm_file import PICKLE_HINT  # noqa: E402

# Weight file names diffusers/transformers save: optional variant, optional shard number.
_WEIGHTS_NAME = re.compile(
    r"^(?:diffusion_pytorch_model|model)(?:\.(?P<variant>[A-Za-z0-9_]+))?(?:-\d+-of-\d+)?\.(?P<ext>safetensors|bin)$"
)


def pick_variant(folder: Path, component: str, allow_pickle: bool) -> str | None:
    """The weights variant to load from ``folder/component`` ("fp16" when only that exists).

    Raises the pickle error when only ``.bin`` weights exist and pickles are not allowed:
    diffusers would otherwise unpickle them.
    """
    found: dict[str, set[str | None]] = {"safetensors": set(), "bin": set()}
    for entry in (folder / component).iterdir():
        match = _WEIGHTS_NAME.match(entry.name)
        if match:
            found[match["ext"]].add(match["variant"])
    for ext in ("safetensors", "bin"):
        variants = found[ext]
        if not variants:
            continue
        if ext == "bin" and not allow_pickle:
            break
        return None if None in variants else sorted(v for v in variants if v)[0]
    if found["bin"]:
        raise ModelLoadError(
            f"{folder / component} holds only pickle weights (.bin); loading a pickle file can run "
            "arbitrary code.",
            PICKLE_HINT,
        )
    raise ModelLoadError(f"{folder / component} contains no weights file.", "The model folder is incomplete.")


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; ModelLoadError when it cannot be read or is not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path} could not be read: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} is not a JSON object.")
    return data


def require_components(folder: Path, components: tuple[str, ...], what: str) -> None:
    """Refuse a folder that lacks one of ``components`` (``what``: the family, for the message)."""
    index = read_json(folder / "model_index.json")
    for component in components:
        if not (folder / component).is_dir():
            raise ModelLoadError(
                f"{folder} has no {component}/ folder; LoRA Studio needs {what} "
                f"(found a {index.get('_class_name') or 'model'} folder)."
            )


def load_component(folder: Path, component: str, cls: Any, what: str, allow_pickle: bool, **kwargs: Any) -> Any:
    """``cls.from_pretrained`` of ``folder/component``, offline, safetensors unless pickles are allowed."""
    variant = pick_variant(folder, component, allow_pickle)
    try:
        return cls.from_pretrained(
            str(folder),
            subfolder=component,
            local_files_only=True,
            use_safetensors=None if allow_pickle else True,
            variant=variant,
            **kwargs,
        )
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelLoadError(f"{folder}: the {what} could not be loaded: {exc}") from exc


def scheduler_settings(folder: Path, prediction_type: str | None, prediction_types: tuple[str, ...]
                       ) -> tuple[dict[str, Any] | None, str]:
    """The folder's scheduler config (or None) and the prediction type: ``prediction_type`` when
    given, else the scheduler config's, else epsilon."""
    scheduler_file = folder / "scheduler" / "scheduler_config.json"
    scheduler_config = read_json(scheduler_file) if scheduler_file.is_file() else None
    if prediction_type is None:
        prediction_type = (scheduler_config or {}).get("prediction_type", "epsilon")
        if prediction_type not in prediction_types:
            raise ModelLoadError(
                f"{scheduler_file}: prediction_type {prediction_type!r} is not supported.",
                "Set `prediction_type` to epsilon or v_prediction in the config.",
            )
    return scheduler_config, prediction_type


def load_tokenizer(folder: Path, subfolder: str, fallback: Any) -> Any:
    """The folder's CLIP tokenizer in ``subfolder``, or ``fallback()`` (the bundled one) when it has none."""
    from transformers import CLIPTokenizer

    if not (folder / subfolder).is_dir():
        return fallback()
    try:
        return CLIPTokenizer.from_pretrained(str(folder), subfolder=subfolder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{folder}: the tokenizer could not be loaded: {exc}") from exc
