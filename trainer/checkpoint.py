"""The checkpoint format, in one place (torch-free): folder and file names, the crash-safe
write, listing and pruning. Reading one back (and checking it is usable) is
:mod:`trainer.resume`'s, with these names.

`checkpoints/step-N.tmp/` is written, fsynced, marked and renamed to `step-N/`. A checkpoint
counts only when its `COMPLETE` marker exists and it has its final name, so a crash while
saving leaves the previous checkpoint as the newest valid one. Old checkpoints are pruned
only after the new one is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable

from trainer.fsutil import fsync_dir, replace_folder
from trainer.rundir import CHECKPOINTS_DIR

COMPLETE_MARKER = "COMPLETE"
# What a checkpoint folder holds.
ADAPTER_FILE = "adapter.safetensors"        # the LoRA weights (peft layout)
TRAINING_STATE_FILE = "training_state.pt"   # optimizer, schedule, scaler, RNG states (weights_only)
TRAINER_STATE_FILE = "trainer_state.json"   # step, epoch, data position, structure, python/numpy RNG


def checkpoint_name(step: int) -> str:
    """Folder name of the checkpoint at ``step``: sorts by step as text."""
    return f"step-{step:08d}"


def checkpoint_step(folder: Path | str) -> int:
    """The step of a checkpoint folder named by :func:`checkpoint_name`."""
    return int(Path(folder).name.removeprefix("step-"))


def checkpoint_folder(run_root: Path, step: int) -> Path:
    """Where the checkpoint of ``step`` lives in a run folder."""
    return Path(run_root) / CHECKPOINTS_DIR / checkpoint_name(step)


def checkpoint_folders(run_root: Path | str) -> list[Path]:
    """Every checkpoint folder of a run, complete or not, newest first (resume checks each)."""
    folder = Path(run_root) / CHECKPOINTS_DIR
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_dir() and p.name.startswith("step-")), reverse=True)


def list_checkpoints(run_root: Path | str) -> list[Path]:
    """Complete checkpoint folders of a run, oldest first (incomplete ones are ignored)."""
    return sorted(p for p in checkpoint_folders(run_root)
                  if not p.name.endswith(".tmp") and (p / COMPLETE_MARKER).exists())


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    fsync_dir(folder)


def write_checkpoint(run_root: Path, step: int, write_files: Callable[[Path], None], keep_last_n: int) -> Path:
    """Create the checkpoint of ``step`` with ``write_files(folder)``; returns its final folder.

    ``keep_last_n`` > 0 prunes older complete checkpoints afterwards (0 keeps all).
    """
    final = checkpoint_folder(run_root, step)
    parent = final.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / (final.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)  # left by a crash during an earlier save of this step
    tmp.mkdir()
    try:
        write_files(tmp)
        (tmp / COMPLETE_MARKER).write_text(json.dumps({"step": step, "time": time.time()}) + "\n", encoding="utf-8")
        _fsync_tree(tmp)
    except BaseException:
        # Disk full or an error while writing: free the space the partial copy took; the
        # previous checkpoints were not touched and stay valid.
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # The same step saved again (a resumed run) swaps atomically, keeping the old one until then.
    replace_folder(tmp, final)
    if keep_last_n > 0:
        prune_checkpoints(run_root, keep_last_n)
    return final


def prune_checkpoints(run_root: Path, keep_last_n: int) -> list[Path]:
    """Delete all but the newest ``keep_last_n`` complete checkpoints; returns the deleted ones."""
    complete = list_checkpoints(run_root)
    doomed = complete[:-keep_last_n] if keep_last_n > 0 else []
    for folder in doomed:
        shutil.rmtree(folder, ignore_errors=True)
    return doomed
