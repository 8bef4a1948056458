"""The Files tab's rows: what a person picks a file by: its name, what loads it, its step, when it
was saved and its size. A checkpoint is shown by its ready-to-use LoRA.

Each complete checkpoint folder holds a ready-to-use LoRA of its step beside the training state
(trainer.checkpoint); its name and size are what a user looks for to try that step in ComfyUI or
A1111. Only folder listings are read: a checkpoint's state files can be large, and the tab is
filled on the UI thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from trainer.checkpoint import ADAPTER_FILE, checkpoint_step
from trainer.rundir import ADAPTER_DIR, DIFFUSERS_LORA, GGUF_FILE, MERGED_DIR
from trainer.wording import human_size

from .event_fields import event_int


# What each format of the trainer's export events (docs/trainer.md, the run directory) loads in.
EXPORT_USES = {
    "kohya": "ComfyUI, A1111/Forge",
    "diffusers": "diffusers (load_lora_weights)",
    "peft": "transformers (peft), vLLM",
    "gguf": "llama.cpp, Ollama",
    "merged": "transformers, vLLM (merged model)",
}
FOLDER_FORMATS = {ADAPTER_DIR: "peft", MERGED_DIR: "merged"}  # a language model's outputs are folders
# The trainer's output names that are the same in every run.
GENERIC_NAMES = frozenset({ADAPTER_DIR, MERGED_DIR, GGUF_FILE, Path(DIFFUSERS_LORA).name})
TIME_FORMAT = "%Y-%m-%d %H:%M"
MISSING = "missing: moved or deleted"


@dataclass(frozen=True)
class FileRow:
    """One row of the Files tab: a file (or folder) to load, and for a checkpoint the folder to resume from."""

    step: str
    saved: str
    name: str      # as the run folder holds it (``diffusers/pytorch_lora_weights.safetensors``)
    size: str
    use: str       # what loads it
    path: Path     # what Copy path copies
    copy_as: str   # its name once copied out (Copy to…): a generic name gets the run's in front
    checkpoint: Path | None = None

    def cells(self) -> tuple[str, str, str, str, str]:
        """The row's columns: file, loads in, step, saved, size."""
        return self.name, self.use, self.step, self.saved, self.size


def export_row(run_dir: Path, event: dict) -> FileRow:
    """The finished file an export event names; a file gone since says so instead of its size."""
    path = run_dir / str(event["path"])
    size = _size(path)
    try:  # written by the trainer, but a run folder is a user's to edit: a bad value leaves its cell empty
        saved = time.strftime(TIME_FORMAT, time.localtime(float(event["time"])))
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        saved = ""
    step = event_int(event, "step")
    return FileRow(f"{step:,}" if step is not None else "", saved, str(event["path"]),
                   human_size(size) if size is not None else MISSING, EXPORT_USES.get(export_format(event), ""), path,
                   _copy_name(run_dir.name, path))


def export_format(event: dict) -> str:
    """The event's format; runs written before export events carried one get it from the file's name,
    which names the format in each of the trainer's outputs (docs/trainer.md)."""
    if event.get("format"):
        return str(event["format"])
    name = str(event["path"])
    if name.endswith(".gguf"):
        return "gguf"
    if name == DIFFUSERS_LORA:
        return "diffusers"
    return FOLDER_FORMATS.get(name) or ("kohya" if name.endswith(".safetensors") else "")


def checkpoint_row(folder: Path) -> FileRow | None:
    """A complete checkpoint, by its ready-to-use LoRA (the folder itself when it has none); None when
    it is gone since it was listed (``keep_last_n_checkpoints`` deletes old ones while the run trains)."""
    try:
        saved = time.strftime(TIME_FORMAT, time.localtime(folder.stat().st_mtime))
    except OSError:
        return None
    ready = _ready_file(folder)
    shown = ready or folder
    size = _size(shown)
    use = "" if ready is None else EXPORT_USES["peft"] if ready.is_dir() else EXPORT_USES["kohya"]
    name = shown.name if shown.is_file() else shown.relative_to(folder.parent).as_posix()  # step-00000030/adapter
    return FileRow(f"{checkpoint_step(folder):,}", saved, name, human_size(size) if size is not None else MISSING, use,
                   shown, _copy_name(f"{folder.parent.parent.name}-{folder.name}", shown), checkpoint=folder)


def _copy_name(owner: str, path: Path) -> str:
    """``path``'s name in a folder of LoRAs from many runs: its own when it names its run (the kohya
    files do), else ``<owner>-<name>`` (``mychat-adapter``, ``mychat-step-00000030-adapter``)."""
    return f"{owner}-{path.name}" if path.name in GENERIC_NAMES else path.name


def _size(path: Path) -> int | None:
    """A file's size, a folder's (its files together), or None when it is not there."""
    try:
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return path.stat().st_size
    except OSError:
        return None


def _ready_file(folder: Path) -> Path | None:
    """The checkpoint's ready-to-use LoRA (not the tensors it resumes from): an image model's LoRA file,
    or a language model's peft ``adapter/`` folder."""
    files = sorted(p for p in folder.glob("*.safetensors") if p.name != ADAPTER_FILE)
    if files:
        return files[0]
    return folder / ADAPTER_DIR if (folder / ADAPTER_DIR).is_dir() else None
