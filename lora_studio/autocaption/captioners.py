"""The captioning models a dataset can use: folders under ``models/captioners/``.

Folders are checked with the trainer's registry, which looks at file names only (no torch,
no onnxruntime), so the dialog can say which files a model folder lacks before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trainer.labeling.errors import LabelInputError
from trainer.labeling.model_search import CAPTIONERS_DIR, captioners_dirs
from trainer.labeling.registry import check_folder


@dataclass(frozen=True)
class CaptionerChoice:
    """One model folder and what the registry made of it."""

    name: str
    path: Path
    family: str = ""  # registry family name ("wd14", "image-to-text"); empty when unusable
    description: str = ""  # e.g. "WD14-style ONNX tagger"
    problem: str = ""  # why it cannot be used (names the missing files), with what to do

    @property
    def usable(self) -> bool:
        """Whether the trainer can load it (as far as file names tell)."""
        return not self.problem

    @property
    def is_tagger(self) -> bool:
        """Taggers take a threshold and excluded tags; captioners write sentences."""
        return self.family == "wd14"


def check_captioner(folder: Path) -> CaptionerChoice:
    """``folder`` checked by the registry (pickle weights are not offered: they can run code)."""
    try:
        family = check_folder(folder, allow_pickle=False)
    except LabelInputError as exc:
        return CaptionerChoice(folder.name, folder, problem=f"{exc.message} ({exc.hint})")
    return CaptionerChoice(folder.name, folder, family.name, family.description)


def captioner_folders(workspace: Path | None, dataset: Path) -> list[Path]:
    """``models/captioners`` folders: the workspace's first, then any next to or above the dataset."""
    found: list[Path] = []
    if workspace is not None and (workspace / CAPTIONERS_DIR).is_dir():
        found.append((workspace / CAPTIONERS_DIR).resolve())
    for folder in captioners_dirs(dataset):
        if folder.resolve() not in found:
            found.append(folder.resolve())
    return found


def find_captioners(workspace: Path | None, dataset: Path) -> list[CaptionerChoice]:
    """Every model folder in those places, checked; usable ones first, then by name."""
    choices = []
    for folder in captioner_folders(workspace, dataset):
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
        except OSError:
            continue  # an unreadable share: the others still count
        choices.extend(check_captioner(child) for child in children)
    return sorted(choices, key=lambda c: (not c.usable, c.name.casefold()))


def job_workspace(workspace: Path | None, dataset: Path) -> Path:
    """Where the job's run folder goes: the open workspace, else the one holding the dataset's models."""
    if workspace is not None:
        return workspace
    dirs = captioners_dirs(dataset)
    return dirs[0].parent.parent if dirs else dataset.parent
