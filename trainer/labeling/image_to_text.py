"""Image-to-text captioners through transformers: BLIP (the seed's), BLIP-2, GIT, Florence-2.

Loaded from a local folder only (``local_files_only``, offline mode), with transformers' own
model classes: a model that needs ``trust_remote_code`` is refused, because running Python
that came with a download is not something a captioning button should do.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from trainer.labeling.base import Captioner, Family, LoadOptions
from trainer.labeling.errors import LabelInputError

CONFIG_FILE = "config.json"
SAFETENSORS = ("model.safetensors", "model.safetensors.index.json")
PICKLES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer.model", "vocab.json", "spiece.model")
# model_type -> transformers class name; others go through the Auto classes.
MODEL_CLASSES: dict[str, str] = {
    "blip": "BlipForConditionalGeneration",
    "blip-2": "Blip2ForConditionalGeneration",
    "git": "GitForCausalLM",
}
AUTO_CLASSES = ("AutoModelForImageTextToText", "AutoModelForVision2Seq")
DEFAULT_PROMPTS = {"florence2": "<MORE_DETAILED_CAPTION>"}  # Florence-2 needs a task prompt


def _claims(folder: Path) -> bool:
    return (folder / CONFIG_FILE).exists()


def _index_missing(index: Path) -> list[str]:
    """Shards named by a ``*.index.json`` that are not in the folder."""
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
    except (OSError, ValueError):
        return [f"{index.name} (unreadable)"]
    return sorted({name for name in weight_map.values() if not (index.parent / name).is_file()})


def _missing(folder: Path, allow_pickle: bool) -> list[str]:
    missing = []
    if not (folder / CONFIG_FILE).is_file():
        missing.append(CONFIG_FILE)
    weights = [name for name in SAFETENSORS + (PICKLES if allow_pickle else ()) if (folder / name).is_file()]
    if not weights:
        if any((folder / name).is_file() for name in PICKLES):
            missing.append("model.safetensors (the folder has only pickle weights, pytorch_model.bin: convert them "
                           "to safetensors, or pass --allow-pickle if you trust the file)")
        else:
            missing.append("model.safetensors")
    elif weights[0].endswith(".index.json"):
        missing += _index_missing(folder / weights[0])
    if not any((folder / name).is_file() for name in PROCESSOR_FILES):
        missing.append(" or ".join(PROCESSOR_FILES))
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        missing.append("tokenizer files (" + " or ".join(TOKENIZER_FILES) + ")")
    return missing


def _model_class(model_type: str, folder: Path) -> Any:
    import transformers

    names = ([MODEL_CLASSES[model_type]] if model_type in MODEL_CLASSES else []) + list(AUTO_CLASSES)
    for name in names:
        cls = getattr(transformers, name, None)
        if cls is not None:
            return cls
    raise LabelInputError(f"transformers {transformers.__version__} has no class for model type {model_type!r}",
                          "use a BLIP, BLIP-2, GIT or Florence-2 captioner", str(folder))


def _processor_side(processor: Any) -> int | None:
    """The largest side the image processor resizes or crops to, if it says so."""
    image_processor = getattr(processor, "image_processor", processor)
    sides = []
    for attr in ("size", "crop_size"):
        value = getattr(image_processor, attr, None)
        if isinstance(value, int):
            sides.append(value)
            continue
        # A plain dict in older transformers, a SizeDict object in newer ones.
        for key in ("height", "width", "shortest_edge", "longest_edge"):
            side = value.get(key) if isinstance(value, dict) else getattr(value, key, None)
            if isinstance(side, int):
                sides.append(side)
    return max(sides) if sides else None


class ImageToTextCaptioner(Captioner):
    """A transformers image-to-text model with its processor."""

    family = "image-to-text"

    def __init__(self, folder: Path, options: LoadOptions) -> None:
        from trainer.models.offline import enable_offline_mode

        enable_offline_mode()  # before transformers is imported: no hub request, ever
        import torch
        import transformers

        self._torch = torch
        self.name = folder.name
        self.options = options
        try:
            config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LabelInputError(f"{CONFIG_FILE} cannot be read: {exc}", "copy the model folder again",
                                  str(folder)) from exc
        transformers.utils.logging.disable_progress_bar()  # no tqdm bars in the job's log
        self.model_type = str(config.get("model_type", ""))
        if config.get("auto_map"):
            raise LabelInputError(
                "this model needs its own Python code (trust_remote_code), which LoRA Studio never runs",
                "use a captioner whose architecture transformers ships (BLIP, BLIP-2, GIT, Florence-2 converted "
                "to transformers' format)", str(folder))
        cls = _model_class(self.model_type, folder)
        self.device = torch.device(options.device)
        if self.device.type == "cpu" and options.cpu_threads:
            torch.set_num_threads(options.cpu_threads)
        # fp16 halves the memory and is how these models are run on GPUs; CPUs want fp32.
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        try:
            self.processor = transformers.AutoProcessor.from_pretrained(folder, local_files_only=True)
            self.model = cls.from_pretrained(folder, local_files_only=True, dtype=self.dtype,
                                             use_safetensors=not options.allow_pickle)
        except (OSError, ValueError, KeyError) as exc:
            raise LabelInputError(f"cannot be loaded by transformers: {exc}",
                                  "check that the folder is a complete image-to-text model", str(folder)) from exc
        self.model.to(self.device).eval()
        self.input_side = _processor_side(self.processor)
        self.prompt = options.prompt if options.prompt is not None else DEFAULT_PROMPTS.get(self.model_type)
        self.tokenizer = getattr(self.processor, "tokenizer", None)
        self.prompt_ids = self._prompt_ids()

    def _prompt_ids(self) -> Any:
        """The prompt's token ids for models that take them next to the image, else ``None``.

        BLIP and GIT get the prompt as plain tokens, added once per batch; other models
        (Florence-2's task tokens, BLIP-2's image tokens) need their processor to build the
        text with the image, so they get it per image in :meth:`prepare`.
        """
        if not self.prompt or self.tokenizer is None or self.model_type not in ("blip", "git"):
            return None
        if self.model_type == "git":  # GIT's prompt is [CLS] + text, without the closing [SEP]
            ids = [self.tokenizer.cls_token_id] + self.tokenizer(self.prompt, add_special_tokens=False).input_ids
            return self._torch.tensor([ids])
        return self.tokenizer(self.prompt, return_tensors="pt").input_ids

    def prepare(self, image: Image.Image) -> Any:
        """The processor's tensors for one image (with the prompt, for models that need it so)."""
        if self.prompt and self.prompt_ids is None:
            tensors = dict(self.processor(images=image, text=self.prompt, return_tensors="pt"))
        else:
            tensors = {"pixel_values": self.processor(images=image, return_tensors="pt")["pixel_values"]}
        tensors.pop("token_type_ids", None)  # BERT tokenizers add them; generate() refuses them
        return tensors

    def collate(self, prepared: Sequence[Any]) -> Any:
        # Every item has the same prompt, so the text tensors have the same length.
        batch = {key: self._torch.cat([item[key] for item in prepared]) for key in prepared[0]}
        if self.prompt_ids is not None:
            batch["input_ids"] = self.prompt_ids.repeat(len(prepared), 1)
        return batch

    def generate(self, batch: Any) -> list[list[str]]:
        torch = self._torch
        inputs = {}
        for key, value in batch.items():
            value = value.to(self.device, non_blocking=True)
            inputs[key] = value.to(self.dtype) if value.is_floating_point() else value
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.options.max_new_tokens,
                                      num_beams=self.options.beams)
        # The prompt's words stay in the caption (BLIP's way: "a photograph of a cat"); image
        # and task tokens are special tokens, which decoding skips.
        texts = self.processor.batch_decode(out, skip_special_tokens=True)
        return [[self._clean(text)] for text in texts]

    def _clean(self, text: str) -> str:
        text = " ".join(text.split())
        if self.prompt and self.prompt.startswith("<"):  # a Florence task token, not caption text
            text = text.replace(self.prompt, "").strip()
        return text

    def free_memory(self) -> None:
        if self.device.type == "cuda":
            self._torch.cuda.empty_cache()

    def close(self) -> None:
        self.model = None
        self.free_memory()


def _load(folder: Path, options: LoadOptions) -> Captioner:
    return ImageToTextCaptioner(folder, options)


FAMILY = Family(
    name="image-to-text",
    description="image-to-text captioner (BLIP, BLIP-2, GIT, Florence-2)",
    required=f"{CONFIG_FILE}, model.safetensors, a processor config ({' or '.join(PROCESSOR_FILES)}) "
             "and tokenizer files",
    claims=_claims,
    missing_files=_missing,
    load=_load,
)
