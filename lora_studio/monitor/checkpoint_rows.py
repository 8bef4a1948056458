"""The Checkpoints tab's rows: what a person picks a checkpoint by (its step, when it was saved, its LoRA).

Each complete checkpoint folder holds a ready-to-use LoRA of its step beside the training state
(trainer.checkpoint); its name and size are what a user looks for to try that step in ComfyUI or
A1111. Only the folder listing is read: a checkpoint's state files can be large, and the tab is
filled on the UI thread.
"""

from __future__ import annotations

import time
from pathlib import Path

from trainer.checkpoint import ADAPTER_FILE, checkpoint_step
from trainer.wording import human_size


def checkpoint_text(folder: Path) -> str:
    """``step 30  ·  saved 2026-12-02 16:20  ·  shapes-demo-step00000030.safetensors (90.3 KB)``."""
    saved = time.strftime("%Y-%m-%d %H:%M", time.localtime(folder.stat().st_mtime))
    text = f"step {checkpoint_step(folder):,}  ·  saved {saved}"
    lora = _ready_lora(folder)
    if lora is not None:
        text += f"  ·  {lora.name} ({human_size(lora.stat().st_size)})"
    return text


def _ready_lora(folder: Path) -> Path | None:
    """The checkpoint's ready-to-use LoRA file (not the peft adapter it resumes from), if it has one."""
    files = sorted(p for p in folder.glob("*.safetensors") if p.name != ADAPTER_FILE)
    return files[0] if files else None
