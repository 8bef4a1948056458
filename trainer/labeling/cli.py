"""`python -m trainer label`: check everything, then caption the images as a job.

Exit codes (the trainer's): 0 done or stopped on request (unreadable images are listed and
skipped, not fatal), 2 bad input (every problem printed with its file and what to do), 1 a
failure while running. With ``--run-dir`` the job keeps the run-directory contract:
``status.json`` (``step`` = images done, ``total_steps`` = images to caption), ``events.jsonl``,
``train.log``, a ``STOP`` file stops it, and ``captions.jsonl`` has one line per image
(``file``, ``old``, ``new``) for the app's preview and undoable apply.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from trainer.captions import safe_relative_path
from trainer.dataset_scan import find_images
from trainer.labeling.args import DEFAULT_CHARACTER_THRESHOLD, DEFAULT_GENERAL_THRESHOLD
from trainer.labeling.base import Family, LoadOptions
from trainer.labeling.captions_io import CaptionTarget, read_existing, resolve_target, write_results
from trainer.labeling.errors import LabelFailure, LabelInputError, LabelInputErrors
from trainer.labeling.merge import needs_caption, tag_key
from trainer.labeling.reporter import JobReporter
from trainer.wording import plural

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
WRITE_EVERY_S = 30.0  # captions reach the caption file at least this often during a long job
log = logging.getLogger("trainer.label")


@dataclass
class LabelPlan:
    """Everything checked before the model is loaded."""

    folder: Path
    target: CaptionTarget
    model: Path
    family: Family
    images: list[Path]  # every image of the dataset (sidecar reading needs them)
    items: list[Any]  # WorkItem: the images to caption
    kept: int  # selected images left alone because they have a caption (fill)
    warnings: list[str]
    options: LoadOptions
    args: argparse.Namespace


def run(args: argparse.Namespace) -> int:
    """Entry point of the ``label`` subcommand."""
    try:
        plan = make_plan(args)
    except (LabelInputError, LabelInputErrors) as exc:
        return _report_input_errors(exc)
    return execute(plan)


def _report_input_errors(exc: LabelInputError | LabelInputErrors, stream: TextIO = sys.stderr) -> int:
    problems = exc.problems if isinstance(exc, LabelInputErrors) else [exc]
    for problem in problems:
        print(f"error: {problem}", file=stream)
    print("label: nothing was captioned; fix the problems above and run again", file=stream)
    return EXIT_INVALID


def _option_problems(args: argparse.Namespace) -> list[LabelInputError]:
    problems = []

    def check(ok: bool, option: str, message: str, hint: str) -> None:
        if not ok:
            problems.append(LabelInputError(f"{option} {message}", hint))

    check(args.batch_size >= 1, "--batch-size", f"is {args.batch_size}", "use 1 or more")
    check(args.max_new_tokens >= 1, "--max-new-tokens", f"is {args.max_new_tokens}", "use 1 or more")
    check(args.beams >= 1, "--beams", f"is {args.beams}", "use 1 or more")
    check(args.workers is None or args.workers >= 1, "--workers", f"is {args.workers}", "use 1 or more")
    for option, value in (("--threshold", args.threshold), ("--character-threshold", args.character_threshold)):
        check(value is None or 0.0 <= value <= 1.0, option, f"is {value}", "use a confidence between 0 and 1")
    check(not args.dry_run or args.run_dir is not None, "--dry-run", "needs --run-dir",
          "the preview goes to <run-dir>/captions.jsonl")
    return problems


def make_plan(args: argparse.Namespace) -> LabelPlan:
    """Check the options, the dataset, its caption file and the model folder; all problems at once."""
    from trainer.labeling.job import WorkItem
    from trainer.labeling.model_search import default_model
    from trainer.labeling.registry import check_folder

    problems = _option_problems(args)
    folder = Path(os.path.abspath(args.input))
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise LabelInputErrors(problems + [LabelInputError(f"dataset folder {what}", "check --input", str(folder))])
    target = family = model = None
    try:
        target = resolve_target(folder, args.output, args.format)
    except LabelInputError as exc:
        problems.append(exc)
    try:
        model = Path(os.path.abspath(args.model)) if args.model is not None else default_model(folder)
        family = check_folder(model, args.allow_pickle)
    except LabelInputError as exc:
        problems.append(exc)
    images = find_images(folder)
    if not images:
        problems.append(LabelInputError("dataset folder contains no images",
                                        "put JPEG/PNG/WebP/BMP/TIFF images in it", str(folder)))
    selected = images
    if args.images is not None:
        try:
            selected = select_images(folder, images, args.images)
        except LabelInputErrors as exc:
            problems += exc.problems
    existing: dict[str, str] = {}
    warnings: list[str] = []
    if target is not None:
        try:
            existing, warnings = read_existing(target, images)
        except LabelInputErrors as exc:
            problems += exc.problems
    if problems:
        raise LabelInputErrors(problems)
    assert target is not None and family is not None and model is not None
    items, kept = [], 0
    for path in selected:
        rel = path.relative_to(folder).as_posix()
        if needs_caption(existing.get(rel), args.mode):
            items.append(WorkItem(rel, path, existing.get(rel)))
        else:
            kept += 1
    tagger_options = (("--threshold", args.threshold is not None), ("--exclude", bool(args.exclude)),
                      ("--rating", args.rating), ("--character-threshold", args.character_threshold is not None))
    if family.name != "wd14":
        for option, given in tagger_options:
            if given:
                warnings.append(f"{option} applies to taggers only; {model.name} is a {family.description}: ignored")
    options = LoadOptions(
        device="cpu", allow_pickle=args.allow_pickle, prompt=args.prompt, max_new_tokens=args.max_new_tokens,
        beams=args.beams,
        general_threshold=DEFAULT_GENERAL_THRESHOLD if args.threshold is None else args.threshold,
        character_threshold=(DEFAULT_CHARACTER_THRESHOLD if args.character_threshold is None
                             else args.character_threshold),
        rating=args.rating,
        exclude=frozenset(tag_key(t) for t in args.exclude.split(",") if t.strip()),
    )
    return LabelPlan(folder, target, model, family, images, items, kept, warnings, options, args)


def select_images(folder: Path, images: list[Path], list_file: Path) -> list[Path]:
    """The images named in ``list_file`` (one per line, relative to the dataset or absolute)."""
    try:
        lines = list_file.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelInputErrors([LabelInputError(f"cannot be read: {exc}", "check --images", str(list_file))]) from exc
    by_rel = {image.relative_to(folder).as_posix(): image for image in images}
    chosen: dict[str, Path] = {}
    problems = []
    for number, line in enumerate(lines, start=1):
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        if os.path.isabs(name):
            try:
                name = Path(os.path.abspath(name)).relative_to(folder).as_posix()
            except ValueError:
                problems.append(LabelInputError(f"{line.strip()!r} is outside the dataset folder {folder}",
                                                "list only images of --input", str(list_file), number))
                continue
        try:
            rel = safe_relative_path(name)
        except ValueError as exc:
            problems.append(LabelInputError(f"line {exc}", "list paths relative to --input", str(list_file), number))
            continue
        if rel not in by_rel:
            problems.append(LabelInputError(f"{rel!r} is not an image of the dataset",
                                            "fix the name or remove the line", str(list_file), number))
            continue
        chosen[rel] = by_rel[rel]
    if problems:
        raise LabelInputErrors(problems)
    if not chosen:
        raise LabelInputErrors([LabelInputError("lists no images", "name at least one image", str(list_file))])
    return sorted(chosen.values(), key=lambda p: p.relative_to(folder).as_posix())


def resolve_device(requested: str, family: Family) -> str:
    """``auto`` becomes ``cuda`` when the family can use a visible GPU, else ``cpu``."""
    if family.name == "wd14":
        try:
            import onnxruntime as ort
            has_gpu = "CUDAExecutionProvider" in ort.get_available_providers()
        except ImportError:
            has_gpu = False
    else:
        import torch
        has_gpu = torch.cuda.is_available()
    if requested == "cuda" and not has_gpu:
        raise LabelInputError("--device cuda, but no usable CUDA GPU is visible",
                              "check `python -m trainer doctor`, or use --device cpu / auto")
    if requested == "auto":
        return "cuda" if has_gpu else "cpu"
    return requested


def execute(plan: LabelPlan) -> int:
    """Load the model and caption ``plan.items``; write the captions (unless a dry run)."""
    from trainer.train_command import StopSignals

    reporter = JobReporter(plan.args.run_dir)
    args = plan.args
    total = len(plan.items)
    reporter.status(state="preparing", step=0, total_steps=total, kind="label", phase="loading model",
                    model=str(plan.model), mode=args.mode, captions=plan.target.describe(), dry_run=args.dry_run)
    for warning in plan.warnings:
        log.warning("warning: %s", warning)
        reporter.event("warning", message=warning)
    if plan.kept:
        log.info("%s already captioned, kept (--mode fill); use --mode append, prepend or replace to change them",
                 plural(plan.kept, "selected image"))
    if not plan.items:
        log.info("nothing to caption")
        reporter.status(state="completed", eta_s=0, phase="done")
        reporter.close()
        return EXIT_OK
    signals = StopSignals()
    signals.install()
    try:
        return _caption_all(plan, reporter, signals)
    except (LabelInputError, LabelInputErrors) as exc:
        problems = exc.problems if isinstance(exc, LabelInputErrors) else [exc]
        for problem in problems:
            log.error("error: %s", problem)
        first = problems[0]
        reporter.fail(f"{first.path}: {first.message}" if first.path else first.message, first.hint, echo=False)
        return EXIT_INVALID
    except LabelFailure as exc:
        reporter.fail(exc.message, exc.hint)
        return EXIT_FAILED
    except KeyboardInterrupt:
        reporter.fail("stopped at once by a second Ctrl+C", "captions written before stay; run again to continue")
        return EXIT_FAILED
    except Exception as exc:  # every failure ends in status.json, with the traceback in the log
        if reporter.run is not None:  # the details go to the log file, not to the console
            with open(reporter.run.paths.log, "a", encoding="utf-8") as handle:
                handle.write(traceback.format_exc())
        reporter.fail(f"{type(exc).__name__}: {exc}", "see train.log in the run folder for the details")
        return EXIT_FAILED
    finally:
        reporter.close()


def _caption_all(plan: LabelPlan, reporter: JobReporter, signals: Any) -> int:
    from trainer.labeling.job import JobOutcome, LabelJob, Result
    from trainer.labeling.loader import default_workers, model_threads
    from trainer.labeling.registry import load_captioner

    args = plan.args
    total = len(plan.items)

    device = resolve_device(args.device, plan.family)
    workers = args.workers or default_workers(device)
    options = LoadOptions(**{**plan.options.__dict__, "device": device,
                             "cpu_threads": model_threads(workers) if device == "cpu" else None})
    log.info("loading %s %s on %s", plan.family.description, plan.model, device)
    loaded_at = time.perf_counter()
    captioner = load_captioner(plan.model, options)
    log.info("model loaded in %.1f s; captioning %d image(s), %d per batch, %d loader thread(s), into %s%s",
             time.perf_counter() - loaded_at, total, args.batch_size, workers, plan.target.describe(),
             " (dry run: nothing is written there)" if args.dry_run else "")
    reporter.status(state="training", phase="captioning", device=device)

    unwritten: dict[str, list[str]] = {}
    written: list[str] = []
    last_write = time.monotonic()

    def flush_captions() -> None:
        nonlocal last_write
        if args.dry_run or not unwritten:
            return
        reporter.status(state="saving")
        changed = write_results(plan.target, plan.images, unwritten, args.mode, args.trigger)
        written.extend(changed)
        reporter.event("captions_written", file=plan.target.describe(), images=len(changed))
        unwritten.clear()
        last_write = time.monotonic()
        reporter.status(state="training", written=len(written))

    def on_result(result: Result) -> None:
        if result.new is None:
            log.warning("warning: %s: the model returned an empty caption; its caption is left as it was",
                        result.rel_path)
        else:
            unwritten[result.rel_path] = result.generated
        reporter.result_line({"file": result.rel_path, "old": result.old, "new": result.new,
                              "generated": result.generated})

    def on_skip(problem: Any) -> None:
        rel = Path(problem.path).relative_to(plan.folder).as_posix()
        log.warning("warning: skipped %s: %s (%s)", problem.path, problem.message, problem.hint)
        reporter.event("warning", message=f"skipped {problem.path}: {problem.message}", hint=problem.hint, file=rel)
        reporter.result_line({"file": rel, "old": None, "new": None, "error": problem.message, "hint": problem.hint})

    started = time.perf_counter()

    def on_batch(outcome: JobOutcome) -> None:
        elapsed = time.perf_counter() - started
        rate = outcome.done / elapsed if elapsed > 0 else 0.0
        eta = (total - outcome.done) / rate if rate > 0 else None
        reporter.status(step=outcome.done, eta_s=round(eta, 1) if eta is not None else None,
                        images_per_s=round(rate, 3), skipped=len(outcome.skipped))
        if reporter.run is not None:
            reporter.run.log_metrics({"step": outcome.done, "time": time.time(), "samples_per_s": round(rate, 3),
                                      "batch_size": job.batch_size})
        log.info("captioned %d/%d images (%.2f images/s)", outcome.done, total, rate)
        if time.monotonic() - last_write >= WRITE_EVERY_S:
            flush_captions()

    job = LabelJob(captioner, plan.items, mode=args.mode, trigger=args.trigger, batch_size=args.batch_size,
                   workers=workers, on_result=on_result, on_skip=on_skip, on_batch=on_batch,
                   stop_requested=lambda: signals.requested.is_set() or reporter.stop_requested())
    try:
        outcome = job.run()
    finally:
        # Whatever happened, what was captioned so far is kept.
        flush_captions()
        captioner.close()
    return _finish(plan, reporter, outcome, written)


def _finish(plan: LabelPlan, reporter: JobReporter, outcome: Any, written: list[str]) -> int:
    args = plan.args
    state = "stopped" if outcome.stopped else "completed"
    rate = outcome.done / outcome.seconds if outcome.seconds > 0 else 0.0
    summary = {"captioned": len(outcome.results), "written": len(written), "skipped": len(outcome.skipped),
               "kept": plan.kept, "images_per_s": round(rate, 3), "batch_size": outcome.batch_size}
    reporter.status(state=state, step=outcome.done, eta_s=0 if state == "completed" else None, phase="done",
                    written=len(written), skipped=len(outcome.skipped), summary=summary)
    reporter.event("label_done", state=state, **summary)
    where = ("nothing written (dry run)" if args.dry_run
             else f"{plural(len(written), 'caption')} written to {plan.target.describe()}")
    log.info("%s: %d of %s captioned, %s", "stopped on request" if outcome.stopped else "done",
             len(outcome.results), plural(len(plan.items), "image"), where)
    if outcome.skipped:
        log.warning("%s could not be read, skipped:", plural(len(outcome.skipped), "image"))
        for problem in outcome.skipped:
            log.warning("  %s: %s (%s)", problem.path, problem.message, problem.hint)
    return EXIT_OK
