"""What the training page shows next to the form, computed off the UI thread (torch-free):
the trainer's own validation, the exact step count, a GPU memory estimate, a time estimate
when an earlier run in the workspace gives a speed, and a warning when the run would train
on a CPU at a size that takes hours there."""

from __future__ import annotations

import functools
import json
import math
import shutil
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trainer.config import ConfigProblem, validate_mapping
from trainer.dataset_scan import scan_dataset
from trainer.estimate import MemoryEstimate, RunFigures, estimate_llm_memory, estimate_memory, run_figures, text_run_figures
from trainer.model_check import check_quantization
from trainer.model_family import Detection, ModelKindError, detect_family, resolve_family

from ..targets.placement import placement_of
from ..targets.runinfo import read_run_info

# Step time grows a little faster than the pixel count (attention is quadratic in it): a
# speed measured at one resolution is scaled by (pixel ratio) ** this to another.
_PIXEL_COST_EXPONENT = 1.25
# On a CPU, a run longer than this gets a warning; so does any run at this size or more
# when no earlier run gives a speed (full-size SD at 512 px takes minutes a step there).
SLOW_CPU_RUN_S = 15 * 60
SLOW_CPU_RESOLUTION = 256


@dataclass(frozen=True)
class Processes:
    """The trainer processes a run starts: one, or (torchrun over several nodes) one per GPU of each node."""

    count: int = 1
    how: str = ""  # "2 nodes × 2 GPUs": how they were counted ("" for one process)


@dataclass
class Analysis:
    """The validator's verdict and the derived figures of one set of values."""

    problems: list[ConfigProblem] = field(default_factory=list)
    figures: RunFigures | None = None
    memory: MemoryEstimate | None = None
    seconds: float | None = None
    speed_source: str | None = None  # e.g. "shapes-demo at 64 px"
    data_problems: int = 0
    family: Detection | None = None  # what the base model is, when it is a model we can train
    held_out: int = 0  # a language model's examples kept for eval_loss (val_size)
    # Files found for a split model's unset options (a Flux.1 transformer's text encoders, VAE ...).
    companions: dict[str, Path] = field(default_factory=dict)
    processes: Processes = Processes()  # every process trains its own batches: a step takes count of them

    @property
    def errors(self) -> list[ConfigProblem]:
        return [p for p in self.problems if p.severity == "error"]


@dataclass(frozen=True)
class MeasuredSpeed:
    """How fast an earlier run of the workspace trained."""

    images_per_s: float
    run_name: str
    resolution: int

    def at(self, resolution: int) -> float:
        """The images/s to expect at ``resolution``, scaled from the measured one."""
        pixels = (resolution / self.resolution) ** 2
        return self.images_per_s / pixels ** _PIXEL_COST_EXPONENT


@functools.lru_cache(maxsize=1)
def this_computer_has_cuda() -> bool:
    """Whether an NVIDIA GPU is visible here, without torch (the driver's files or its tool)."""
    gpus = Path("/proc/driver/nvidia/gpus")
    try:
        if gpus.is_dir() and any(gpus.iterdir()):
            return True
    except OSError:
        pass
    return shutil.which("nvidia-smi") is not None


def _run_config(run_dir: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _run_resolution(config: dict[str, Any]) -> int:
    try:
        return int(config.get("resolution", 512))
    except (TypeError, ValueError):
        return 512  # the schema's default


def _run_family(config: dict[str, Any]) -> str:
    """The family a run trained (its resolved config names the base model); "sd" when it cannot tell."""
    if config.get("model_family") not in (None, "auto"):
        return str(config["model_family"])
    if not config.get("base_model"):
        return "sd"
    try:
        return detect_family(str(config.get("base_model", "")), allow_pickle=bool(config.get("allow_pickle"))).family
    except ModelKindError:
        return "sd"


def recent_speed(workspace: Path | None, family: str = "sd") -> MeasuredSpeed | None:
    """Median images/s of one trainer process in the newest run of ``family`` in the workspace that logged
    any, its name and size.

    Only runs of the same family count: an SDXL step costs several SD steps at the same size. A run over
    several nodes logs the images of all its processes: its speed is divided by their number.
    """
    if workspace is None:
        return None
    runs = sorted(workspace.glob("runs/*/metrics.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True)
    for metrics in runs[:10]:
        config = _run_config(metrics.parent)
        if _run_family(config) != family:
            continue
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
            placement = placement_of(read_run_info(metrics.parent))
            processes = placement.world_size if placement is not None else 1
            return MeasuredSpeed(statistics.median(speeds) / max(processes, 1), metrics.parent.name,
                                 _run_resolution(config))
    return None


def analyse(values: dict[str, Any], config_dir: Path, workspace: Path | None, on_cpu: bool = False,
            processes: Processes = Processes()) -> Analysis:
    """Validate ``values`` like `python -m trainer validate` and derive the figures.

    ``on_cpu``: the run would train on a CPU (the chosen target is this computer and it
    has no CUDA GPU); slow settings then get a warning. ``processes``: the run's trainer
    processes (several over several nodes), which divide its steps among them.
    """
    config, problems = validate_mapping(values, config_dir, check_paths=True)
    model, detection, refusal = _base_model(values, config_dir)
    result = Analysis(problems=list(problems), family=detection, processes=processes)
    if detection is not None and detection.companions:
        result.companions = _companions_to_fill(values, model, detection)
    if config is None:
        return result  # the family is known all the same, so the form shows its options
    result.problems += _model_problems(config, detection, refusal)
    if on_cpu or config.device == "cpu":  # the trainer would refuse fewer-bit base weights at the start
        result.problems += check_quantization(config.quantization_bit, "cpu")
    if result.family is not None and result.family.spec.task == "text":
        return _analyse_text(config, result)
    metadata = Path(config.metadata_path) if config.metadata_path else None
    scan = scan_dataset(Path(config.train_data_dir), metadata_path=metadata, caption_extension=config.caption_extension,
                        check_images=False, max_image_pixels=config.max_image_pixels)
    result.data_problems = len(scan.errors)
    for problem in scan.errors[:20]:
        result.problems.append(ConfigProblem(f"{Path(problem.path).name}: {problem.message}", problem.hint,
                                             option="train_data_dir", line=problem.line, path=problem.path))
    result.figures = run_figures(config, scan.items, processes.count)
    result.memory = estimate_memory(config, result.family.family if result.family else "sd",
                                    result.family.variant if result.family else "", model=model)
    speed = recent_speed(workspace, result.family.family if result.family else "sd")
    if speed and result.figures.total_steps:
        # Per process: the processes train their batches of a step side by side (their speed as one GPU's).
        images = result.figures.total_steps * config.batch_size * config.gradient_accumulation_steps
        result.seconds = images / speed.at(config.resolution)
        result.speed_source = f"{speed.run_name} at {speed.resolution} px"
    if on_cpu or config.device == "cpu":
        warning = _slow_cpu_warning(config.resolution, result.seconds)
        if warning is not None:
            result.problems.append(warning)
    return result


def _base_model(values: dict[str, Any], config_dir: Path
                ) -> tuple[Path | None, Detection | None, ModelKindError | None]:
    """The base model's path, what it is, and why it is no trainable model: from the values as typed,
    one read of its header (or model_index.json / config.json) per check."""
    if not values.get("base_model"):
        return None, None, None
    model = config_dir / Path(str(values["base_model"])).expanduser()
    try:
        return model, detect_family(model, allow_pickle=bool(values.get("allow_pickle"))), None
    except ModelKindError as exc:
        return model, None, exc
    except OSError:
        return model, None, None


def _companions_to_fill(values: dict[str, Any], model: Path, detection: Detection) -> dict[str, Path]:
    """For a split model (a Flux.1 transformer file) whose other files' options are unset, the files
    found beside it in ComfyUI's folders."""
    from .model_finder import find_companions

    unset = tuple(option for option in detection.companions if not values.get(option))
    return find_companions(model, unset) if unset else {}


def _analyse_text(config: Any, result: Analysis) -> Analysis:
    """A language-model run: the text dataset's problems, its steps and the memory from the model's config.json."""
    from trainer.causal_lm_folder import CausalLMRefused, read_model_config
    from trainer.llm.formats import read_dataset

    dataset = read_dataset(config.dataset_path, config.dataset_format)
    result.data_problems = len(dataset.errors)
    for problem in dataset.errors[:20]:
        result.problems.append(ConfigProblem(f"{Path(problem.path).name}: {problem.message}", problem.hint,
                                             option="dataset_path", line=problem.line, path=problem.path))
    result.figures = text_run_figures(config, len(dataset.examples), result.processes.count)
    result.held_out = len(dataset.examples) - result.figures.images
    try:
        result.memory = estimate_llm_memory(config, read_model_config(Path(config.base_model)))
    except CausalLMRefused:
        result.memory = None  # the model check has said what is wrong
    return result


def _model_problems(config: Any, detection: Detection | None, refusal: ModelKindError | None) -> list[ConfigProblem]:
    """The trainer's own words for a base model that is no trainable model (a LoRA, an SDXL refiner...)
    or that `model_family` contradicts."""
    try:
        if refusal is not None:
            raise refusal
        if detection is not None:
            resolve_family(detection, config.model_family, Path(config.base_model).name)
    except ModelKindError as exc:
        return [ConfigProblem(exc.message, exc.hint, option="base_model")]
    return []


def _slow_cpu_warning(resolution: int, seconds: float | None) -> ConfigProblem | None:
    """A warning when a CPU run will take very long (a GPU target or a smaller size helps)."""
    hint = "for a first try use 64-128 px and few steps, or choose a GPU target in Run on"
    if seconds is not None:
        if seconds < SLOW_CPU_RUN_S:
            return None
        hours = seconds / 3600
        length = f"about {hours:.1f} h" if hours >= 1.5 else f"about {math.ceil(seconds / 60)} min"
        return ConfigProblem(f"This run trains on the CPU (no CUDA GPU here): {length} at {resolution} px.", hint,
                             severity="warning", option="resolution")
    if resolution < SLOW_CPU_RESOLUTION:
        return None
    return ConfigProblem(f"This run trains on the CPU (no CUDA GPU here): at {resolution} px a full-size model "
                         "takes minutes a step, so the run may take hours.", hint, severity="warning", option="resolution")
