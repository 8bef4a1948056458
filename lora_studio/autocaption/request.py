"""What the user asked for, as the trainer's ``label`` command line and a run folder."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from trainer.fsutil import atomic_write_text

from ..targets.launch import TrainerJob

IMAGES_FILE = "images.txt"  # the list of images to caption, written into the run folder
RESULTS_FILE = "captions.jsonl"  # what the job generated, one line an image (the trainer writes it)
REQUEST_FILE = "request.json"  # the request as the desktop sees it: lets a restarted app find the job
RUNS_DIR = "runs"
LABEL_PREFIX = "label-"
# The label options that hold paths, and how a message names each one: mapped for the target at the start.
PATH_OPTIONS = {"--input": "the dataset folder", "--model": "the model folder", "--run-dir": "the job's run folder",
                "--images": "the image list"}


@dataclass(frozen=True)
class LabelRequest:
    """One auto-caption job: plain data, so it can go to a worker or a remote launcher."""

    dataset: Path
    images: tuple[str, ...]  # relative paths of the images to caption, as the grid knows them
    model: Path
    mode: str = "fill"
    trigger: str = ""
    threshold: float | None = None  # taggers only (None: the trainer's default)
    exclude: str = ""  # taggers only, comma-separated
    batch_size: int = 8
    device: str = "auto"

    def label_args(self, run_dir: Path, images_file: Path) -> list[str]:
        """Arguments after ``python -m trainer label``; always a dry run (the app applies the results)."""
        args = ["--input", str(self.dataset), "--model", str(self.model), "--mode", self.mode,
                "--batch-size", str(self.batch_size), "--device", self.device,
                "--run-dir", str(run_dir), "--images", str(images_file), "--dry-run"]
        if self.trigger.strip():
            args += ["--trigger", self.trigger.strip()]
        if self.threshold is not None:
            args += ["--threshold", f"{self.threshold:g}"]
        if self.exclude.strip():
            args += ["--exclude", self.exclude.strip()]
        return args

    def trainer_job(self, run_dir: Path, images_file: Path) -> TrainerJob:
        """The ``label`` command as a job of the app's one job stack (paths as the desktop sees them)."""
        return TrainerJob(("label", *self.label_args(run_dir, images_file)), run_dir, PATH_OPTIONS)

    def to_json(self, target: str = "") -> str:
        """The request as JSON for ``request.json`` (paths as the desktop sees them), with the target's name."""
        data: dict[str, Any] = asdict(self)
        data.update(dataset=str(self.dataset), model=str(self.model), images=list(self.images), target=target,
                    created=time.time())
        return json.dumps(data, indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "LabelRequest":
        """Parse :meth:`to_json`'s output; raises ValueError (or TypeError) when it is not one."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values.update(dataset=Path(values["dataset"]), model=Path(values["model"]),
                      images=tuple(str(rel) for rel in values.get("images") or ()))
        return cls(**values)


def write_request(run_dir: Path, request: LabelRequest, target: str) -> Path:
    """Record the request in the run folder (atomically), so that a restarted app can offer the job again."""
    path = run_dir / REQUEST_FILE
    atomic_write_text(path, request.to_json(target))
    return path


def read_request(run_dir: Path) -> tuple[LabelRequest, dict[str, Any]] | None:
    """The request recorded in ``run_dir`` and the raw record (target, created), or None."""
    try:
        text = (run_dir / REQUEST_FILE).read_text(encoding="utf-8")
        return LabelRequest.from_json(text), json.loads(text)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def new_run_dir(workspace: Path, now: float | None = None) -> Path:
    """A fresh ``<workspace>/runs/label-<timestamp>`` folder (created; never one in use)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now if now is not None else time.time()))
    root = workspace / RUNS_DIR
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        candidate = root / (f"{LABEL_PREFIX}{stamp}" if n == 1 else f"{LABEL_PREFIX}{stamp}-{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue  # two jobs in one second: each gets its own folder
        return candidate
    raise OSError(f"no free run folder name under {root}")


def write_images_file(run_dir: Path, images: tuple[str, ...]) -> Path:
    """The ``--images`` list (one relative path a line) in the run folder, for the record too."""
    path = run_dir / IMAGES_FILE
    atomic_write_text(path, "".join(f"{rel}\n" for rel in images))
    return path
