"""Command line: `python -m trainer {train,validate,doctor,schema,make-tiny-model,demo}`.

Exit codes: 0 success, 2 invalid config or data (every problem printed), 1 failure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from trainer import __version__
from trainer.library_noise import quiet_library_noise

from trainer.train_command import EXIT_INVALID, EXIT_OK


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainer", description="LoRA Studio's training engine (offline).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser("train", help="train a LoRA from a YAML config")
    train.add_argument("--config", required=True, type=Path, help="the YAML config file")

    validate = sub.add_parser("validate", help="check a config and its data set; print every problem (exit 2 if any)")
    validate.add_argument("--config", required=True, type=Path)
    validate.add_argument("--json", action="store_true", help="print the problems as JSON")
    validate.add_argument("--no-images", action="store_true", help="skip decoding every image (faster)")

    doctor = sub.add_parser("doctor", help="Python, torch, CUDA, GPUs and free disk of this machine")
    doctor.add_argument("--json", action="store_true")
    doctor.add_argument("--path", type=Path, help="report free disk space for this folder")

    schema = sub.add_parser("schema", help="print the option schema")
    schema.add_argument("--json", action="store_true", help="as JSON (default: a readable list)")

    tiny = sub.add_parser("make-tiny-model", help="write a tiny random model (diffusers folder + single file)")
    tiny.add_argument("dir", type=Path)
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument("--family", choices=("sd1", "sd2", "sdxl", "flux", "sd3", "llama"), default="sd1",
                      help="SD 1.x (CLIP), SD 2.x (OpenCLIP), SDXL (both encoders), Flux.1-dev (T5 + CLIP, a diffusers "
                           "folder and split files), SD3.5 Medium (CLIP-L, CLIP-G and T5: a diffusers folder, an "
                           "all-in-one file and split files) shapes, or a Llama causal LM with a BPE tokenizer and chat "
                           "template (DIR/llama)")

    kohya = sub.add_parser("import-kohya", help="turn a kohya_ss .json or sd-scripts .toml config into ours")
    kohya.add_argument("source", type=Path)
    kohya.add_argument("--output", type=Path, help="write the YAML here (default: print it)")

    demo = sub.add_parser("demo", help="create the demo workspace and train the demo LoRA on it")
    demo.add_argument("--workspace", type=Path, default=Path("demo-workspace"))
    demo.add_argument("--no-train", action="store_true", help="only create the workspace")

    label = sub.add_parser("label", help="auto-caption a dataset's images with a local captioner or tagger")
    from trainer.labeling.args import add_arguments as add_label_arguments  # stdlib only: cheap
    add_label_arguments(label)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m trainer` and the `lora-train` script."""
    quiet_library_noise()  # before any command imports torch and the libraries
    args = _build_parser().parse_args(argv)
    if args.command == "train":
        from trainer.train_command import run_training
        return run_training(args.config)
    if args.command == "validate":
        from trainer.train_command import validate_command
        return validate_command(args.config, as_json=args.json, check_images=not args.no_images)
    if args.command == "doctor":
        from trainer.doctor import collect, format_report
        report = collect(args.path)
        print(json.dumps(report, indent=1) if args.json else format_report(report))
        return EXIT_OK
    if args.command == "schema":
        return _print_schema(args.json)
    if args.command == "make-tiny-model":
        from trainer.models.offline import enable_offline_mode
        enable_offline_mode()
        from transformers.utils.logging import disable_progress_bar
        disable_progress_bar()  # a tiny model is one shard: a "Writing model shards" bar tells nothing
        if args.family == "llama":
            from trainer.llm.tiny_model import make_tiny_llama
            print(f"model folder: {make_tiny_llama(args.dir, seed=args.seed)}")
            return EXIT_OK
        from trainer.models.tiny import make_tiny_model
        paths = make_tiny_model(args.dir, seed=args.seed, family=args.family)
        print(f"diffusers folder: {paths.diffusers_dir}" + (f"\nsingle file:      {paths.single_file}"
                                                               if paths.single_file else ""))
        for name, path in (paths.split_files or {}).items():
            print(f"{name + ':':<18}{path}")
        return EXIT_OK
    if args.command == "import-kohya":
        return _import_kohya(args.source, args.output)
    if args.command == "demo":
        from trainer.train_command import run_demo
        return run_demo(args.workspace, train=not args.no_train)
    if args.command == "label":
        from trainer.labeling.cli import run as run_label
        return run_label(args)
    raise AssertionError(args.command)


def _import_kohya(source: Path, output: Path | None) -> int:
    from trainer.config.kohya_import import import_kohya_file, imported_yaml
    from trainer.fsutil import atomic_write_text
    try:
        result = import_kohya_file(source)
    except (OSError, ValueError) as exc:  # json/toml errors are ValueErrors
        print(f"{source}: cannot be imported: {exc}", file=sys.stderr)
        return EXIT_INVALID
    text = imported_yaml(result, source)
    if output is None:
        print(text, end="")
    else:
        atomic_write_text(output, text)
        print(f"wrote {output}")
    for key, why in sorted(result.not_mapped.items()):
        print(f"not imported: {key}: {why}", file=sys.stderr)
    return EXIT_OK


def _print_schema(as_json: bool) -> int:
    from trainer.config.schema import OPTIONS, schema_json
    if as_json:
        print(json.dumps(schema_json(), indent=1))
        return EXIT_OK
    group = None
    for option in OPTIONS:
        if option.group != group:
            group = option.group
            print(f"\n[{group}]")
        default = "(required)" if option.required else f"default {option.default!r}"
        print(f"  {option.name} ({option.type}, {default}){' [advanced]' if option.advanced else ''}")
        print(f"      {option.help}")
        for choice in option.choices:
            print(f"      - {choice.value}: {choice.description}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
