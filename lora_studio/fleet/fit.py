"""What a queued run needs, what a target has, and whether one fits the other.

A run needs a GPU (unless its config says ``device: cpu``) with room for the training form's
memory estimate. What a target has is known from the trainer's ``doctor`` on it, which every
preflight runs: this desk keeps the GPUs each of its targets reported last in a small file
(:func:`note_gpus`). A target never checked yet is taken to fit: its preflight decides.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from trainer.fsutil import atomic_write_text
from trainer.wording import plural

_NOTES_LOCK = threading.Lock()  # one writer of the notes file at a time in this process


@dataclass(frozen=True)
class Needs:
    """What a queued run asks of a target."""

    gpus: int = 1                    # GPUs it wants; 0: it runs on a CPU
    memory_gb: float | None = None   # the form's estimate of its peak GPU memory, when there was one
    targets: tuple[str, ...] = ()    # where it may run, first choice first; () = any target of the desk
    together: bool = False           # on all of ``targets`` at once: one run over several nodes (torchrun)

    def to_json(self) -> dict[str, Any]:
        """The needs as queue.json holds them."""
        return {"gpus": self.gpus, "memory_gb": self.memory_gb, "targets": list(self.targets), "together": self.together}

    @classmethod
    def from_json(cls, data: Any) -> "Needs":
        """The needs of a queue.json (missing or odd fields fall back to the defaults)."""
        data = data if isinstance(data, dict) else {}
        gpus, memory, targets = data.get("gpus", 1), data.get("memory_gb"), data.get("targets")
        return cls(gpus=int(gpus) if isinstance(gpus, (int, float)) else 1,
                   memory_gb=float(memory) if isinstance(memory, (int, float)) else None,
                   targets=tuple(str(t) for t in targets) if isinstance(targets, list) else (),
                   together=data.get("together") is True)

    def describe(self) -> str:
        """``1 GPU, ~12.4 GiB`` / ``CPU`` / ``2 nodes: 1 GPU, ~12.4 GiB each``: the Fleet view's Needs column."""
        if self.gpus <= 0:
            text = "CPU"
        else:
            text = "1 GPU" if self.gpus == 1 else f"{self.gpus} GPUs"
            text = f"{text}, ~{self.memory_gb:.1f} GiB" if self.memory_gb else text
        return f"{len(self.targets)} nodes: {text} each" if self.together else text


@dataclass(frozen=True)
class Gpu:
    """One GPU of a target, as its doctor reported it."""

    name: str
    total_gb: float


@dataclass(frozen=True)
class GpuNote:
    """The GPUs a target reported at its last preflight, and when."""

    gpus: tuple[Gpu, ...]
    seen_at: float

    def describe(self) -> str:
        """``2 × NVIDIA A100 (80 GiB)``, several kinds joined with ``+``, or ``no GPU (CPU only)``."""
        if not self.gpus:
            return "no GPU (CPU only)"
        kinds: dict[tuple[str, float], int] = {}
        for gpu in self.gpus:
            kinds[(gpu.name, gpu.total_gb)] = kinds.get((gpu.name, gpu.total_gb), 0) + 1
        return " + ".join(f"{count} × {name} ({total:.0f} GiB)" for (name, total), count in kinds.items())

    @property
    def biggest_gb(self) -> float:
        """The memory of its biggest GPU (0 without one)."""
        return max((gpu.total_gb for gpu in self.gpus), default=0.0)


def gpus_from_doctor(doctor: Mapping[str, Any] | None) -> tuple[Gpu, ...] | None:
    """The GPUs of a ``doctor --json`` report; None when the report is missing or says nothing."""
    if not isinstance(doctor, Mapping) or not isinstance(doctor.get("gpus"), list):
        return None
    found = []
    for gpu in doctor["gpus"]:
        if isinstance(gpu, Mapping):
            total = gpu.get("total_gb")
            found.append(Gpu(str(gpu.get("name") or "GPU"), float(total) if isinstance(total, (int, float)) else 0.0))
    return tuple(found)


def load_gpu_notes(path: Path | str | None) -> dict[str, GpuNote]:
    """Every target's last known GPUs from ``path``; {} when there is no (readable) file: nothing is known."""
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    notes: dict[str, GpuNote] = {}
    for name, note in (data.get("targets") or {}).items() if isinstance(data, dict) else ():
        gpus = gpus_from_doctor(note) if isinstance(note, dict) else None
        if gpus is not None:
            seen = note.get("seen_at")
            notes[str(name)] = GpuNote(gpus, float(seen) if isinstance(seen, (int, float)) else 0.0)
    return notes


def note_gpus(path: Path | str, target: str, doctor: Mapping[str, Any] | None, now: float | None = None) -> None:
    """Remember the GPUs ``target``'s doctor just reported (atomically; a report without GPUs changes nothing)."""
    gpus = gpus_from_doctor(doctor)
    if gpus is None:
        return
    with _NOTES_LOCK:  # the dispatcher starts on several targets at once: no update may be lost
        notes = load_gpu_notes(path)
        notes[target] = GpuNote(gpus, time.time() if now is None else now)
        data = {"version": 1, "targets": {name: {"seen_at": note.seen_at,
                                                 "gpus": [{"name": g.name, "total_gb": g.total_gb} for g in note.gpus]}
                                          for name, note in sorted(notes.items())}}
        atomic_write_text(Path(path), json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def misfit(needs: Needs, note: GpuNote | None) -> tuple[str, str] | None:
    """Why a target with the GPUs of ``note`` can never take a run with ``needs``, briefly and fully; None when it fits.

    A target whose GPUs are not known yet fits: its preflight will tell.
    """
    if note is None or needs.gpus <= 0:
        return None
    if len(note.gpus) < needs.gpus:
        return ("no GPU", "it has no GPU") if not note.gpus else \
            ("too few GPUs", f"it has {plural(len(note.gpus), 'GPU')}")
    if needs.memory_gb and note.biggest_gb and note.biggest_gb < needs.memory_gb:
        return "GPU too small", f"its GPU has {note.biggest_gb:.0f} GiB, this run needs ~{needs.memory_gb:.1f} GiB"
    return None


def needs_for(values: Mapping[str, Any], memory_gb: float | None, targets: list[str],
              notes: Mapping[str, GpuNote]) -> Needs:
    """The needs of a run with config ``values`` on one of ``targets`` ([] = any).

    ``device: cpu`` needs no GPU. So does ``auto`` when every target it may use is known to
    have none: the user chose a CPU machine, and Start would have trained there as well.
    """
    device = str(values.get("device") or "auto")
    cpu_only = bool(targets) and all(name in notes and not notes[name].gpus for name in targets)
    gpus = 0 if device == "cpu" or (device == "auto" and cpu_only) else 1
    return Needs(gpus=gpus, memory_gb=round(memory_gb, 1) if memory_gb and gpus else None, targets=tuple(targets))
