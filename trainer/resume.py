"""Choosing where a run continues from: the newest checkpoint that is complete and readable.

A checkpoint is trusted only after its files are checked: the `COMPLETE` marker, a
readable adapter, a parseable state file and a training state that loads with
`weights_only=True` (no pickled code). A damaged newest checkpoint is reported and the one
before it is used instead.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from trainer.checkpoint import ADAPTER_FILE, COMPLETE_MARKER, TRAINER_STATE_FILE, TRAINING_STATE_FILE, checkpoint_folders
from trainer.config import TrainConfig
from trainer.problems import ExplainedError
from trainer.rundir import ACTIVE_STATES, heartbeat_moves, is_stale, local_pid_alive, read_status

@dataclass
class ResumePlan:
    """Where to start: a checkpoint folder (or None for a fresh run) and what was passed over."""

    checkpoint: Path | None
    skipped: list[str] = field(default_factory=list)


class ResumeRefused(ExplainedError):
    """The run folder cannot be used as asked; message and hint say why and what to do."""


def checkpoint_problem(folder: Path) -> str | None:
    """Why ``folder`` is not a usable checkpoint, or None when it is."""
    if folder.name.endswith(".tmp"):
        return "was being written when the run stopped (incomplete)"
    if not (folder / COMPLETE_MARKER).exists():
        return "has no COMPLETE marker (it was not finished)"
    try:
        state = json.loads((folder / TRAINER_STATE_FILE).read_text(encoding="utf-8"))
        int(state["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return f"has a missing or damaged {TRAINER_STATE_FILE}"
    try:
        from safetensors.torch import load_file
        load_file(folder / ADAPTER_FILE)
    except Exception:
        return f"has a missing or damaged {ADAPTER_FILE}"
    try:
        import torch
        torch.load(folder / TRAINING_STATE_FILE, map_location="cpu", weights_only=True)
    except Exception:
        return f"has a missing or damaged {TRAINING_STATE_FILE}"
    return None


def _live_owner(root: Path, status: dict | None) -> str | None:
    """Who is training in this folder right now, if anyone ("pid 12 on host gpu-01").

    On this host the process table decides; for another host its heartbeat does (its process
    cannot be seen from here), so a dead VM's run becomes usable once it is stale. A heartbeat
    that looks stale by this machine's clock is watched before it is believed: the other
    machine's clock may be behind, while its trainer still beats.
    """
    if not status or status.get("state") not in ACTIVE_STATES:
        return None
    pid, host = status.get("pid"), status.get("host")
    if host == socket.gethostname() and isinstance(pid, int):
        if pid == os.getpid() or not local_pid_alive(pid):
            return None
    elif is_stale(status):
        beating = heartbeat_moves(root, status.get("heartbeat"))
        if beating is None or beating.get("state") not in ACTIVE_STATES:  # gone, or it just ended
            return None
        behind = time.time() - float(beating.get("heartbeat") or 0)
        return f"pid {pid} on host {host}, whose clock runs {behind:.0f} s behind this one's; its heartbeat still changes"
    return f"pid {pid} on host {host}"


# What a launcher writes into the run folder before the trainer starts: not a previous run.
_LAUNCH_FILES = {"STOP", "config.yaml", "run.json", "train.log"}


def plan_resume(config: TrainConfig) -> ResumePlan:
    """Decide from the `resume` option and the run folder's contents; raises ResumeRefused."""
    root = Path(config.output_dir)
    used = root.is_dir() and any(p.name not in _LAUNCH_FILES for p in root.iterdir())
    if config.resume == "never":
        if used:
            raise ResumeRefused(f"output_dir {root} already holds files of a run, and resume is `never`",
                                "choose a new output_dir, empty that folder, or set resume: auto to continue the run")
        return ResumePlan(None)
    if config.resume != "auto":
        folder = Path(config.resume)
        problem = checkpoint_problem(folder)
        if problem:
            raise ResumeRefused(f"checkpoint {folder} {problem}", "pick another checkpoint, or set resume: auto")
        return ResumePlan(folder)
    if not used:
        return ResumePlan(None)
    status = read_status(root)
    owner = _live_owner(root, status)
    if owner:
        raise ResumeRefused(f"output_dir {root} is in use by a trainer that is still running ({owner})",
                            "stop that run first (STOP file or the app's Stop button), or wait for it to finish")
    if status and status.get("state") == "completed":
        raise ResumeRefused(f"output_dir {root} holds a run that already completed (step {status.get('step')})",
                            "choose a new output_dir to train again, or delete that folder")
    skipped = []
    for folder in checkpoint_folders(root):
        problem = checkpoint_problem(folder)
        if problem is None:
            return ResumePlan(folder, skipped)
        if not folder.name.endswith(".tmp"):
            skipped.append(f"checkpoint {folder.name} {problem}; using an older one")
    return ResumePlan(None, skipped)
