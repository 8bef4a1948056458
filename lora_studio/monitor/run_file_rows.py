"""The Files tab's rows: what a person picks a file by. A finished file by what it loads in, its step
and its name; a checkpoint by its step, when it was saved and its ready-to-use LoRA.

Each complete checkpoint folder holds a ready-to-use LoRA of its step beside the training state
(trainer.checkpoint); its name and size are what a user looks for to try that step in ComfyUI or
A1111. Only folder listings are read: a checkpoint's state files can be large, and the tab is
filled on the UI thread.
"""

from __future__ import annotations

import time
from pathlib import Path

from trainer.checkpoint import ADAPTER_FILE, checkpoint_step
from trainer.wording import human_size


# What each format of the trainer's export events (docs/trainer.md, the run directory) loads in.
EXPORT_USES = {
    "kohya": "finished LoRA for ComfyUI and A1111/Forge",
    "diffusers": "finished LoRA in diffusers' layout (load_lora_weights)",
    "peft": "finished adapter (peft: transformers, vLLM)",
    "gguf": "finished adapter as GGUF (llama.cpp, Ollama)",
    "merged": "merged model (transformers, vLLM)",
}
TIME_FORMAT = "%Y-%m-%d %H:%M"


def export_text(path: Path, event: dict) -> str:
    """``finished LoRA for ComfyUI and A1111/Forge  ·  step 36  ·  saved 2026-12-03 19:01  ·  shapes-demo.safetensors
    (90.3 KB)``, from the export event that wrote ``path``; a file gone since says so."""
    parts = [EXPORT_USES.get(event.get("format", ""), "finished file")]
    if "step" in event:
        parts.append(f"step {int(event['step']):,}")
    if "time" in event:
        parts.append(f"saved {time.strftime(TIME_FORMAT, time.localtime(float(event['time'])))}")
    size = _size(path)
    parts.append(f"{event['path']} ({human_size(size) if size is not None else 'missing: moved or deleted'})")
    return "  ·  ".join(parts)


def _size(path: Path) -> int | None:
    """A file's size, a folder's (its files together), or None when it is not there."""
    try:
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return path.stat().st_size
    except OSError:
        return None


def checkpoint_text(folder: Path) -> str:
    """``step 30  ·  saved 2026-12-02 16:20  ·  shapes-demo-step00000030.safetensors (90.3 KB)``."""
    saved = time.strftime(TIME_FORMAT, time.localtime(folder.stat().st_mtime))
    text = f"step {checkpoint_step(folder):,}  ·  saved {saved}"
    lora = _ready_lora(folder)
    if lora is not None:
        text += f"  ·  {lora.name} ({human_size(lora.stat().st_size)})"
    return text


def _ready_lora(folder: Path) -> Path | None:
    """The checkpoint's ready-to-use LoRA file (not the peft adapter it resumes from), if it has one."""
    files = sorted(p for p in folder.glob("*.safetensors") if p.name != ADAPTER_FILE)
    return files[0] if files else None
