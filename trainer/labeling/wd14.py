"""WD14-style booru taggers exported to ONNX (SmilingWolf's wd-*-tagger family), via onnxruntime.

A folder holds ``model.onnx`` and ``selected_tags.csv`` (columns ``name`` and ``category``;
categories 9 = rating, 0 = general, 4 = character). The model takes NHWC float32 images in
BGR order with values 0-255, padded to a white square, and returns one sigmoid score per tag.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from trainer.labeling.base import Captioner, Family, LoadOptions
from trainer.labeling.errors import LabelFailure, LabelInputError
from trainer.labeling.merge import tag_key

TAGS_FILE = "selected_tags.csv"
MODEL_FILE = "model.onnx"
RATING, GENERAL, CHARACTER = 9, 0, 4
# Kaomoji tags keep their underscores: "^_^" is not "^ ^".
_KAOMOJI = frozenset({"0_0", "(o)_(o)", "+_+", "+_-", "._.", "<o>_<o>", "<|>_<|>", "=_=", ">_<", "3_3",
                      "6_9", ">_o", "@_@", "^_^", "o_o", "u_u", "x_x", "|_|", "||_||"})


@dataclass(frozen=True)
class Tag:
    """One row of ``selected_tags.csv``."""

    name: str  # as written in captions: underscores to spaces
    category: int


def _onnx_file(folder: Path) -> Path | None:
    if (folder / MODEL_FILE).is_file():
        return folder / MODEL_FILE
    found = sorted(folder.glob("*.onnx"))
    return found[0] if len(found) == 1 else None


def _claims(folder: Path) -> bool:
    return (folder / TAGS_FILE).exists() or any(folder.glob("*.onnx"))


def _missing(folder: Path, allow_pickle: bool) -> list[str]:
    del allow_pickle  # ONNX is not a pickle format.
    missing = []
    if _onnx_file(folder) is None:
        missing.append(MODEL_FILE)
    if not (folder / TAGS_FILE).is_file():
        missing.append(TAGS_FILE)
    return missing


def caption_tag(name: str) -> str:
    """A tag as it goes into a caption: underscores to spaces, except in kaomoji."""
    name = name.strip()
    return name if name in _KAOMOJI else name.replace("_", " ")


def read_tags(path: Path) -> list[Tag]:
    """The tags of ``selected_tags.csv``, in model output order."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelInputError(f"cannot be read: {exc}", "copy the tagger's selected_tags.csv again", str(path)) from exc
    reader = csv.DictReader(text.splitlines())
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    if "name" not in fields or "category" not in fields:
        raise LabelInputError(f"has the columns {reader.fieldnames}, not 'name' and 'category'",
                              "use the selected_tags.csv that came with the tagger", str(path), 1)
    tags = []
    for line, row in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "") for k, v in row.items()}
        try:
            category = int(row["category"])
        except ValueError:
            raise LabelInputError(f"category {row['category']!r} is not a number",
                                  "use the selected_tags.csv that came with the tagger", str(path), line) from None
        tags.append(Tag(caption_tag(row["name"]), category))
    if not tags:
        raise LabelInputError("lists no tags", "use the selected_tags.csv that came with the tagger", str(path))
    return tags


def select_tags(scores: Sequence[float], tags: Sequence[Tag], options: LoadOptions) -> list[str]:
    """The tags to write for one image's scores, most confident first.

    General and character tags each have their own threshold; the rating (one of the
    rating tags, the most likely) is added only when asked for; excluded tags never appear.
    """
    chosen: list[tuple[float, str]] = []
    best_rating: tuple[float, str] | None = None
    for score, tag in zip(scores, tags):
        score = float(score)
        if tag_key(tag.name) in options.exclude:
            continue
        if tag.category == RATING:
            if best_rating is None or score > best_rating[0]:
                best_rating = (score, tag.name)
        elif tag.category == CHARACTER:
            if score >= options.character_threshold:
                chosen.append((score, tag.name))
        elif score >= options.general_threshold:
            chosen.append((score, tag.name))
    if options.rating and best_rating is not None:
        chosen.append(best_rating)
    chosen.sort(key=lambda pair: -pair[0])
    return [name for _, name in chosen]


class OnnxTagger(Captioner):
    """A loaded WD14-style tagger."""

    family = "wd14"

    def __init__(self, folder: Path, options: LoadOptions) -> None:
        import numpy as np
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise LabelInputError("onnxruntime is not installed, and WD14 taggers need it",
                                  "pip install onnxruntime (onnxruntime-gpu on GPU machines)", str(folder)) from exc

        self._np = np
        self.name = folder.name
        self.options = options
        self.tags = read_tags(folder / TAGS_FILE)
        model_path = _onnx_file(folder)
        assert model_path is not None  # checked by the registry
        providers = ["CPUExecutionProvider"]
        if options.device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise LabelInputError(
                    "--device cuda, but this onnxruntime has no CUDA support",
                    "install onnxruntime-gpu on GPU machines, or use --device cpu", str(model_path))
            providers.insert(0, "CUDAExecutionProvider")
        try:
            session_options = ort.SessionOptions()
            if options.cpu_threads:
                session_options.intra_op_num_threads = options.cpu_threads
            self.session = ort.InferenceSession(str(model_path), session_options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own types for broken files
            raise LabelInputError(f"cannot be loaded by onnxruntime: {exc}",
                                  "copy the tagger's model.onnx again (it may be truncated)", str(model_path)) from exc
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        shape = list(model_input.shape)
        # NHWC (the WD14 export) unless the channels are clearly second.
        self.channels_first = len(shape) == 4 and shape[1] == 3 and shape[3] != 3
        size = shape[2] if self.channels_first else shape[1]
        self.size = int(size) if isinstance(size, int) else 448
        self.input_side = self.size
        outputs = self.session.get_outputs()[0].shape
        if len(outputs) == 2 and isinstance(outputs[1], int) and outputs[1] != len(self.tags):
            raise LabelInputError(
                f"{TAGS_FILE} lists {len(self.tags)} tags but the model scores {outputs[1]}",
                "the two files come from different taggers: copy both from the same release", str(folder))

    def prepare(self, image: Image.Image) -> Any:
        """Pad to a white square, resize, RGB to BGR, float32 0-255 (the tagger's training input)."""
        side = max(image.size)
        square = Image.new("RGB", (side, side), (255, 255, 255))
        square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
        if side != self.size:
            square = square.resize((self.size, self.size), Image.Resampling.BICUBIC)
        array = self._np.asarray(square, dtype=self._np.float32)[:, :, ::-1]
        if self.channels_first:
            array = array.transpose(2, 0, 1)
        return self._np.ascontiguousarray(array)

    def collate(self, prepared: Sequence[Any]) -> Any:
        return self._np.stack(prepared)

    def generate(self, batch: Any) -> list[list[str]]:
        scores = self.session.run(None, {self.input_name: batch})[0]
        if scores.ndim != 2 or scores.shape[1] != len(self.tags):
            raise LabelFailure(f"the tagger returned scores of shape {scores.shape} for {len(self.tags)} tags",
                               f"check that model.onnx and {TAGS_FILE} belong together")
        return [select_tags(row, self.tags, self.options) for row in scores]

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]


def _load(folder: Path, options: LoadOptions) -> Captioner:
    return OnnxTagger(folder, options)


FAMILY = Family(
    name="wd14",
    description="WD14-style ONNX tagger",
    required=f"{MODEL_FILE} and {TAGS_FILE} (columns name, category)",
    claims=_claims,
    missing_files=_missing,
    load=_load,
)
