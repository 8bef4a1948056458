"""The ``label`` subcommand's options (stdlib only: ``trainer.cli`` builds its parser with this)."""

from __future__ import annotations

import argparse
from pathlib import Path

from trainer.labeling.merge import MODE_HELP

FORMATS = ("csv", "txt", "jsonl")
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_GENERAL_THRESHOLD = 0.35  # WD14's usual general-tag cut-off
DEFAULT_CHARACTER_THRESHOLD = 0.85  # characters are only named when the tagger is sure


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``label`` options to ``parser``."""
    parser.description = (
        "Caption a dataset's images with a local captioning model (BLIP-style captioner or WD14-style "
        "ONNX tagger). Captions are written atomically in the dataset's caption format; existing captions "
        "are kept unless --mode replace."
    )
    parser.add_argument("--input", required=True, type=Path, help="the dataset folder")
    parser.add_argument("--output", type=Path,
                        help="caption file to write (metadata.csv or metadata.jsonl); default: the dataset's own")
    parser.add_argument("--format", choices=FORMATS,
                        help="caption format to write when --output is not given (txt: one .txt next to each image)")
    parser.add_argument("--model", type=Path,
                        help="captioner folder; default: the only one under models/captioners/ "
                             "next to or above --input")
    modes = "; ".join(f"{name}: {text}" for name, text in MODE_HELP.items())
    parser.add_argument("--mode", choices=list(MODE_HELP), default="fill", help=f"default fill. {modes}")
    parser.add_argument("--trigger", help="trigger word put first in every caption written (never twice)")
    parser.add_argument("--threshold", type=float, default=None,
                        help=f"taggers: confidence needed for a general tag (default {DEFAULT_GENERAL_THRESHOLD})")
    parser.add_argument("--character-threshold", type=float, default=None,
                        help=f"taggers: confidence needed for a character tag (default {DEFAULT_CHARACTER_THRESHOLD})")
    parser.add_argument("--rating", action="store_true", help="taggers: add the most likely rating tag")
    parser.add_argument("--exclude", default="",
                        help="taggers: comma-separated tags never to write (e.g. 'solo, simple background')")
    parser.add_argument("--prompt", default=None,
                        help="captioners: text the caption starts from (e.g. 'a photograph of'); "
                             "Florence-2 uses a task such as '<DETAILED_CAPTION>'")
    parser.add_argument("--max-new-tokens", type=int, default=50, help="captioners: longest caption in tokens")
    parser.add_argument("--beams", type=int, default=1, help="captioners: beam search width (1 is fastest)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per model call (halved on out-of-memory)")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="auto: the GPU when there is one")
    parser.add_argument("--workers", type=int, default=None, help="image loading threads (default: up to 4)")
    parser.add_argument("--run-dir", type=Path,
                        help="job folder: status.json, events.jsonl, train.log, captions.jsonl; STOP stops the job")
    parser.add_argument("--images", type=Path,
                        help="text file listing the images to caption, one per line (relative to --input)")
    parser.add_argument("--dry-run", action="store_true",
                        help="do not change any caption file; only write captions.jsonl in --run-dir (a preview)")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="allow .bin/.pt weights (a pickle file can run code; use only files you trust)")
