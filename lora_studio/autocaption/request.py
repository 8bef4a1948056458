"""What the user asked for, as the trainer's ``label`` command line and a run folder."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

IMAGES_FILE = "images.txt"  # the list of images to caption, written into the run folder
RUNS_DIR = "runs"


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


def new_run_dir(workspace: Path, now: float | None = None) -> Path:
    """A fresh ``<workspace>/runs/label-<timestamp>`` folder (created; never one in use)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now if now is not None else time.time()))
    root = workspace / RUNS_DIR
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        candidate = root / (f"label-{stamp}" if n == 1 else f"label-{stamp}-{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue  # two jobs in one second: each gets its own folder
        return candidate
    raise OSError(f"no free run folder name under {root}")


def write_images_file(run_dir: Path, images: tuple[str, ...]) -> Path:
    """The ``--images`` list (one relative path a line) in the run folder, for the record too."""
    path = run_dir / IMAGES_FILE
    path.write_text("".join(f"{rel}\n" for rel in images), encoding="utf-8")
    return path
