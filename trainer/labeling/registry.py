"""The captioner families (one module each) and how a model folder is matched to one."""

from __future__ import annotations

import importlib
from pathlib import Path

from trainer.labeling.base import Captioner, Family, LoadOptions
from trainer.labeling.errors import LabelInputError

# Adding a family is adding a module with a ``FAMILY`` and naming it here. Order matters:
# the first family that claims a folder gets it.
FAMILY_MODULES: tuple[str, ...] = ("trainer.labeling.wd14", "trainer.labeling.image_to_text")


def families() -> list[Family]:
    """Every registered family (the modules import no heavy library at import time)."""
    return [importlib.import_module(name).FAMILY for name in FAMILY_MODULES]


def family_for(folder: Path) -> Family:
    """The family of a model folder; :class:`LabelInputError` when none claims it."""
    if not folder.exists():
        raise LabelInputError("model folder does not exist", "check --model, or put the captioner under "
                              "models/captioners/<name>/", str(folder))
    if not folder.is_dir():
        raise LabelInputError("--model must be a folder, not a file",
                              "pass the folder that holds the model's files", str(folder))
    for family in families():
        if family.claims(folder):
            return family
    needs = "; ".join(f"{f.description}: {f.required}" for f in families())
    raise LabelInputError("is not a captioning model folder that LoRA Studio knows", f"it needs one of - {needs}",
                          str(folder))


def check_folder(folder: Path, allow_pickle: bool) -> Family:
    """The folder's family, after checking that every file it needs is there."""
    family = family_for(folder)
    missing = family.missing_files(folder, allow_pickle)
    if missing:
        raise LabelInputError(
            f"{family.description} folder is incomplete: missing {', '.join(missing)}",
            f"copy the missing files into the folder ({family.required})", str(folder))
    return family


def load_captioner(folder: Path, options: LoadOptions) -> Captioner:
    """Check and load the captioner in ``folder`` (local files only)."""
    family = check_folder(folder, options.allow_pickle)
    return family.load(folder, options)
