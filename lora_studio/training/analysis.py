"""What the training page shows next to the form, computed off the UI thread (torch-free):
the trainer's own validation, the exact step count, a GPU memory estimate and, when an
earlier run in the workspace gives a speed, a time estimate."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.config import ConfigProblem, validate_mapping
from trainer.dataset_scan import scan_dataset
from trainer.estimate import MemoryEstimate, RunFigures, estimate_memory, run_figures


@dataclass
class Analysis:
    """The validator's verdict and the derived figures of one set of values."""

    problems: list[ConfigProblem] = field(default_factory=list)
    figures: RunFigures | None = None
    memory: MemoryEstimate | None = None
    seconds: float | None = None
    speed_source: str | None = None
    data_problems: int = 0

    @property
    def errors(self) -> list[ConfigProblem]:
        return [p for p in self.problems if p.severity == "error"]


def recent_speed(workspace: Path | None) -> tuple[float, str] | None:
    """Median images/s of the newest run in the workspace that logged any (and its name)."""
    if workspace is None:
        return None
    runs = sorted(workspace.glob("runs/*/metrics.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True)
    for metrics in runs[:10]:
        try:
            lines = metrics.read_text(encoding="utf-8").splitlines()[-200:]
        except OSError:
            continue
        speeds = []
        for line in lines:
            try:
                speeds.append(float(json.loads(line)["samples_per_s"]))
            except (ValueError, KeyError, TypeError):
                continue
        if speeds:
            return statistics.median(speeds), metrics.parent.name
    return None


def analyse(values: dict[str, Any], config_dir: Path, workspace: Path | None) -> Analysis:
    """Validate ``values`` like `python -m trainer validate` and derive the figures."""
    config, problems = validate_mapping(values, config_dir, check_paths=True)
    result = Analysis(problems=list(problems))
    if config is None:
        return result
    metadata = Path(config.metadata_path) if config.metadata_path else None
    scan = scan_dataset(Path(config.train_data_dir), metadata_path=metadata, caption_extension=config.caption_extension,
                        check_images=False, max_image_pixels=config.max_image_pixels)
    result.data_problems = len(scan.errors)
    for problem in scan.errors[:20]:
        result.problems.append(ConfigProblem("train_data_dir", f"{Path(problem.path).name}: {problem.message}",
                                             problem.hint, problem.line, problem.path))
    result.figures = run_figures(config, scan.items)
    result.memory = estimate_memory(config)
    speed = recent_speed(workspace)
    if speed and result.figures.total_steps:
        images_per_s, run_name = speed
        result.seconds = result.figures.total_steps * config.batch_size * config.gradient_accumulation_steps / images_per_s
        result.speed_source = run_name
    return result
