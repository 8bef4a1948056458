"""`train` and `validate`: check everything first, then run the recipe inside a run directory.

Nothing is written to `output_dir` until the config, the data set and the base model have
passed every check, so a typo never leaves a half-made run folder behind.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
import traceback
from dataclasses import replace
from pathlib import Path

from trainer import __version__
from trainer.config import ConfigProblem, TrainConfig, config_to_yaml, load_config
from trainer.fsutil import atomic_write_text
from trainer.wording import plural

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
log = logging.getLogger("trainer")


def _is_text_run(config: TrainConfig) -> bool:
    """True when the base model is a language model (the run trains on text, not images)."""
    from trainer.model_family import FAMILIES_BY_ID, ModelKindError, detect_family

    spec = FAMILIES_BY_ID.get(config.model_family)
    if spec is None:
        try:
            spec = detect_family(config.base_model, allow_pickle=config.allow_pickle).spec
        except ModelKindError:  # the model check says what is wrong; the data option says what kind of run
            return config.dataset_path is not None and config.train_data_dir is None
    return spec.task == "text"


def _dataset_problems(config: TrainConfig, check_images: bool):
    """The data set read and checked: (the scan or text dataset, its problems, what it holds for people)."""
    if _is_text_run(config):
        from trainer.llm.formats import read_dataset
        data = read_dataset(config.dataset_path, config.dataset_format)
        return data, data.problems, {"examples": len(data.examples)}
    from trainer.dataset_scan import scan_dataset
    metadata = Path(config.metadata_path) if config.metadata_path else None
    scan = scan_dataset(Path(config.train_data_dir), metadata_path=metadata, caption_extension=config.caption_extension,
                        check_images=check_images, max_image_pixels=config.max_image_pixels)
    return scan, scan.problems, {"images": len(scan.items)}


def _problem_line(problem) -> str:
    """A problem as a line of the log: errors plain, the rest with their severity in front."""
    return str(problem) if problem.severity == "error" else f"{problem.severity}: {problem}"


def check_all(config_path: Path, check_images: bool = True):
    """Config, base model and data set checks: (config or None, scan or None, problems as text lines, ok)."""
    config, problems = load_config(config_path)
    lines = [_problem_line(p) for p in problems]
    if config is None:
        return None, None, lines, False
    from trainer.model_check import check_model_options
    model_problems = check_model_options(config, _device_type(config) if config.quantization_bit != "none" else None)
    lines += [str(replace(p, path=str(config_path))) for p in model_problems]
    data, data_problems, _counts = _dataset_problems(config, check_images)
    lines += [_problem_line(p) for p in data_problems]
    ok = not model_problems and not any(p.severity == "error" for p in data_problems)
    return config, data, lines, ok


def _device_type(config: TrainConfig) -> str | None:
    """Where the run will train ("cuda" or "cpu"), for the checks that depend on it (imports torch);
    None when its `device` is not on this machine, which the run then reports."""
    from trainer.precision import DeviceUnavailable, resolve_precision

    try:
        return resolve_precision(config.device, config.mixed_precision).device.type
    except DeviceUnavailable:
        return None


def validate_command(config_path: Path, as_json: bool = False, check_images: bool = True) -> int:
    """`python -m trainer validate`: print every problem; exit 2 when there is an error."""
    config, problems = load_config(config_path)
    records = [_record(p) for p in problems]
    counts: dict[str, int] = {}
    if config is not None:
        from trainer.model_check import check_model_options
        model_problems = check_model_options(config)
        records += [_record(replace(p, path=str(config_path))) for p in model_problems]
        _data, data_problems, counts = _dataset_problems(config, check_images)
        records += [{"option": "", "file": p.path, "line": p.line, "message": p.message, "hint": p.hint,
                     "severity": p.severity} for p in data_problems]
    ok = config is not None and not any(r["severity"] == "error" for r in records)
    if as_json:
        print(json.dumps({"ok": ok, "problems": records, **counts}, indent=1))
    else:
        for record in records:
            print(_format_record(record), file=sys.stderr if record["severity"] == "error" else sys.stdout)
        if ok:
            print(f"{config_path}: valid ({', '.join(f'{n} {what}' for what, n in counts.items())})")
        else:
            errors = sum(r["severity"] == "error" for r in records)
            print(f"{config_path}: {plural(errors, 'problem')} must be fixed before training", file=sys.stderr)
    return EXIT_OK if ok else EXIT_INVALID


def _record(problem: ConfigProblem) -> dict:
    """A config problem as `validate --json` writes it: the app reads these keys from a target's trainer."""
    return {"option": problem.option, "message": problem.message, "hint": problem.hint, "line": problem.line,
            "file": problem.path, "severity": problem.severity}


def _format_record(record: dict) -> str:
    where = record.get("file") or ""
    if record.get("line"):
        where += f":{record['line']}"
    text = f"{where}: {record['option'] + ': ' if record.get('option') else ''}"
    text += record["message"]
    if record.get("hint"):
        text += f" ({record['hint']})"
    return ("" if record["severity"] == "error" else f"{record['severity']}: ") + text


class StopSignals:
    """SIGTERM/SIGINT ask for a graceful stop; a second SIGINT stops at once."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self._interrupts = 0

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._graceful)
        signal.signal(signal.SIGINT, self._interrupt)

    def _graceful(self, signum, frame) -> None:
        self.requested.set()

    def _interrupt(self, signum, frame) -> None:
        self._interrupts += 1
        self.requested.set()
        if self._interrupts > 1:
            raise KeyboardInterrupt  # the last complete checkpoint stays valid
        print("stopping after this step (press Ctrl+C again to stop at once)", file=sys.stderr)


def _setup_logging(log_file: Path | None) -> logging.Handler:
    """Log to train.log and the console; other ranks of a multi-process run log warnings only."""
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter("%(message)s"))
    if log_file is None:
        log.handlers[:] = [console]
        log.setLevel(logging.WARNING)
        log.propagate = False
        return console
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    if _is_same_file(sys.stdout, log_file):
        # A launcher sent our output into train.log already: one copy of each line is enough.
        console.setFormatter(handler.formatter)
        log.handlers[:] = [console]
        log.setLevel(logging.INFO)
        log.propagate = False
        handler.close()
        return console
    log.handlers[:] = [handler, console]
    log.setLevel(logging.INFO)
    log.propagate = False
    return handler


def _is_same_file(stream, path: Path) -> bool:
    import os
    try:
        a, b = os.fstat(stream.fileno()), os.stat(path)
    except (OSError, ValueError, AttributeError):
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _failure_hint(exc: BaseException) -> tuple[str, str]:
    """A human message and what to do, for the failures people actually hit."""
    import torch
    from trainer.models.errors import ModelLoadError
    from trainer.optim import OptimizerUnavailable
    from trainer.precision import DeviceUnavailable
    from trainer.loop import TrainingFailure

    if isinstance(exc, (TrainingFailure, OptimizerUnavailable, ModelLoadError)):
        return exc.message, exc.hint
    if isinstance(exc, DeviceUnavailable):
        return str(exc), "set device: auto (or cpu), or check the GPU driver with `python -m trainer doctor`"
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return ("the GPU ran out of memory", "lower batch_size, turn on gradient_checkpointing, lower resolution or "
                "lora_rank, or use mixed_precision: fp16/bf16")
    if isinstance(exc, OSError) and getattr(exc, "errno", None) == 28:
        return ("the disk is full", "free space in the output folder; the last complete checkpoint is still valid")
    return f"{type(exc).__name__}: {exc}", "see train.log in the run folder for the details"


def run_training(config_path: Path) -> int:
    """`python -m trainer train --config F`."""
    from trainer.models.offline import enable_offline_mode
    enable_offline_mode()
    process_started = time.time()

    from trainer.distributed import init_distributed, shutdown
    dist = init_distributed()
    try:
        return _train(config_path, dist, process_started)
    finally:
        shutdown(dist)


def _train(config_path: Path, dist, process_started: float) -> int:
    config, data, lines, ok = check_all(config_path)
    if dist.is_main:
        for line in lines:
            print(line, file=sys.stderr)
    if config is None or not ok:
        if dist.is_main:
            print(f"{config_path}: not starting; fix the problems above and run again", file=sys.stderr)
        return EXIT_INVALID

    from trainer.loop import StopRequested
    from trainer.resume import ResumeRefused, plan_resume
    from trainer.rundir import NullRunWriter, RunWriter

    # Rank 0 decides where to continue from (before it writes anything) and tells the others.
    try:
        plan = dist.broadcast(plan_resume(config) if dist.is_main else None)
    except ResumeRefused as exc:
        print(f"{config_path}: resume: {exc.explained()}", file=sys.stderr)
        dist.broadcast(None)
        return EXIT_INVALID
    if plan is None:
        return EXIT_INVALID
    root = Path(config.output_dir)
    if dist.is_main:
        root.mkdir(parents=True, exist_ok=True)
        stop_file = root / "STOP"
        if stop_file.exists():
            stop_file.unlink()  # it asked the previous process to stop, and it did
    run = RunWriter(root, __version__) if dist.is_main else NullRunWriter(root)
    handler = _setup_logging(run.paths.log if dist.is_main else None)
    header = f"Resolved config of a LoRA Studio run. Run it again with:\n  python -m trainer train --config {run.paths.config}"
    if dist.is_main:
        # The run folder's config.yaml says how to continue this run: once it has resumed
        # from a chosen checkpoint, it continues from its own newest one.
        written = config.replace(resume="auto") if config.resume not in ("auto", "never") else config
        atomic_write_text(run.paths.config, config_to_yaml(written, header))
    for note in config.migration_notes:
        run.log_event("warning", message=f"config: {note}")
    for line in lines:
        if line.startswith("warning: "):
            run.log_event("warning", message=line[len("warning: "):])
    for message in plan.skipped:
        log.warning(message)
        run.log_event("warning", message=message)

    signals = StopSignals()
    signals.install()
    from trainer.llm.formats import TextDataset

    if isinstance(data, TextDataset):  # check_all read a text dataset: the base model is a language model
        from trainer.llm.recipe import LLMRecipe as Recipe
    else:
        from trainer.recipe import LoRATrainingRecipe as Recipe  # trains on the scan's images
        data = data.items
    recipe = Recipe(config, run, data, dist=dist, stop_flag=lambda: signals.requested.is_set() or run.stop_requested())
    run.update(process_started_at=process_started)
    run.start_heartbeat()
    try:
        outcome = recipe.run_all(plan.checkpoint)
        run.set_state(outcome, step=recipe.global_step, eta_s=0 if outcome == "completed" else None)
        log.info("run %s at step %d", outcome, recipe.global_step)
        return EXIT_OK
    except StopRequested:
        run.set_state("stopped")
        log.info("stopped before training started")
        return EXIT_OK
    except KeyboardInterrupt:
        run.set_state("stopped", error={"message": "stopped at once by a second Ctrl+C", "hint": "the last checkpoint is intact"})
        return EXIT_FAILED
    except Exception as exc:  # report every failure in status.json, with the traceback in train.log
        message, hint = _failure_hint(exc)
        log.error("training failed: %s\n%s", message, traceback.format_exc())
        run.log_event("error", message=message, hint=hint, step=recipe.global_step)
        run.set_state("failed", error={"message": message, "hint": hint})
        print(f"error: {message} ({hint})", file=sys.stderr)
        return EXIT_INVALID if _is_input_error(exc) else EXIT_FAILED
    finally:
        recipe.cleanup()
        run.close()
        handler.close()


def _is_input_error(exc: BaseException) -> bool:
    from trainer.models.errors import ModelLoadError
    from trainer.optim import OptimizerUnavailable
    return isinstance(exc, (ModelLoadError, OptimizerUnavailable))


def run_demo(root: Path, train: bool = True) -> int:
    """`python -m trainer demo`: create the demo workspace, then train the demo LoRA in it."""
    from trainer.demo_workspace import RUN_DIR, create_demo_workspace
    config = create_demo_workspace(root)
    print(f"demo workspace: {root.resolve()}\nconfig: {config}")
    if not train:
        return 0
    code = run_training(config)
    if code == 0:
        print(f"\nThe LoRA and the run record are in {(root / RUN_DIR).resolve()}")
    return code
