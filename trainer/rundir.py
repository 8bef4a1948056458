"""The run directory contract (DESIGN.md section 3): writer for the trainer, reader for the app.

Torch-free: the app tails these files to show progress, curves and events. Everything
here follows the contract's rules: `status.json` is replaced atomically; `.jsonl` files
are appended one flushed line at a time; readers skip a half-written last line and read
only new bytes; after a resume, the newest line for a step supersedes older ones.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from trainer.fsutil import atomic_write_text

STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"
EVENTS_FILE = "events.jsonl"
LOG_FILE = "train.log"
CONFIG_FILE = "config.yaml"
RUN_FILE = "run.json"
STOP_FILE = "STOP"
CHECKPOINTS_DIR = "checkpoints"
SAMPLES_DIR = "samples"
TENSORBOARD_DIR = "tb"
# What a finished run hands over besides `<output_name>.safetensors` (docs/trainer.md): an image
# run's LoRA in diffusers' layout; a language model's peft adapter folder, the GGUF inside it and
# the merged model. A checkpoint of a language model holds an adapter folder of its step too.
DIFFUSERS_LORA = "diffusers/pytorch_lora_weights.safetensors"
ADAPTER_DIR = "adapter"
GGUF_FILE = "adapter.gguf"
MERGED_DIR = "merged"

STATES = ("starting", "preparing", "training", "sampling", "saving", "completed", "stopped", "failed")
FINAL_STATES = ("completed", "stopped", "failed")
ACTIVE_STATES = ("starting", "preparing", "training", "sampling", "saving")
# A run that has not written a heartbeat for this long (and whose process is gone) is lost.
HEARTBEAT_INTERVAL_S = 5.0
STALE_AFTER_S = 60.0
# A heartbeat written on another machine is read with this machine's clock, and the two clocks
# may differ by more than STALE_AFTER_S. Before a folder is taken over on the word of the clocks,
# its heartbeat is watched this long: a living trainer rewrites it every HEARTBEAT_INTERVAL_S.
CONFIRM_STALE_S = 2.5 * HEARTBEAT_INTERVAL_S


def _member(name: str) -> property:
    """A property for the file (or folder) ``name`` of the run directory."""
    return property(lambda self: self.root / name, doc=f"The run's ``{name}``.")


@dataclass
class RunPaths:
    """Where each file of a run directory lives."""

    root: Path

    status = _member(STATUS_FILE)
    metrics = _member(METRICS_FILE)
    events = _member(EVENTS_FILE)
    log = _member(LOG_FILE)
    config = _member(CONFIG_FILE)
    stop = _member(STOP_FILE)
    checkpoints = _member(CHECKPOINTS_DIR)
    samples = _member(SAMPLES_DIR)
    tensorboard = _member(TENSORBOARD_DIR)


class RunWriter:
    """The trainer's side: keeps `status.json` current and appends metrics and events.

    A background thread rewrites the status with a fresh heartbeat every few seconds, so a
    reader can tell a long step (model loading, sampling) from a dead process.
    """

    def __init__(self, root: Path | str, trainer_version: str, heartbeat_s: float = HEARTBEAT_INTERVAL_S) -> None:
        self.paths = RunPaths(Path(root))
        self.paths.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._status: dict[str, Any] = {
            "state": "starting", "step": 0, "total_steps": None, "epoch": 0, "total_epochs": None,
            "heartbeat": time.time(), "eta_s": None, "pid": os.getpid(), "host": socket.gethostname(),
            "last_checkpoint": None, "error": None, "trainer_version": trainer_version,
            "started_at": time.time(),
        }
        self._heartbeat_s = heartbeat_s
        self._stop_heartbeat = threading.Event()
        self._thread: threading.Thread | None = None
        self._metrics = open(self.paths.metrics, "a", encoding="utf-8")
        self._events = open(self.paths.events, "a", encoding="utf-8")
        self._write_status_locked()

    # -- status ------------------------------------------------------------------------
    def update(self, **fields: Any) -> None:
        """Change status fields and write `status.json` atomically."""
        with self._lock:
            self._status.update(fields)
            self._write_status_locked()

    def set_state(self, state: str, **fields: Any) -> None:
        """Move to a new state (one of `STATES`)."""
        if state not in STATES:
            raise ValueError(f"unknown run state {state!r}")
        self.update(state=state, **fields)

    @property
    def status(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._status)

    def _write_status_locked(self) -> None:
        self._status["heartbeat"] = time.time()
        atomic_write_text(self.paths.status, json.dumps(self._status, indent=1) + "\n")

    def start_heartbeat(self) -> None:
        """Start the thread that refreshes the heartbeat while the trainer is busy."""
        def beat() -> None:
            while not self._stop_heartbeat.wait(self._heartbeat_s):
                with self._lock:
                    try:
                        self._write_status_locked()
                    except OSError:
                        pass  # shared storage hiccup: the next beat tries again
        self._thread = threading.Thread(target=beat, name="run-heartbeat", daemon=True)
        self._thread.start()

    # -- jsonl -------------------------------------------------------------------------
    def log_metrics(self, record: dict[str, Any]) -> None:
        """Append one metrics line (flushed, so a reader sees it at once)."""
        self._append(self._metrics, record)

    def log_event(self, kind: str, **fields: Any) -> None:
        """Append a milestone to `events.jsonl` (checkpoint, sample, resume, warning, error)."""
        self._append(self._events, {"time": time.time(), "kind": kind, **fields})

    def _append(self, handle: Any, record: dict[str, Any]) -> None:
        with self._lock:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()

    def stop_requested(self) -> bool:
        """True when the user (or the app) created the STOP file."""
        return self.paths.stop.exists()

    def close(self) -> None:
        """Stop the heartbeat, write the final status and close the files."""
        self._stop_heartbeat.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self._write_status_locked()
            for handle in (self._metrics, self._events):
                try:
                    os.fsync(handle.fileno())
                except OSError:
                    pass
                handle.close()


class NullRunWriter:
    """What the other ranks of a multi-process run use: rank 0 alone writes the run folder."""

    def __init__(self, root: Path | str) -> None:
        self.paths = RunPaths(Path(root))

    def update(self, **fields: Any) -> None:
        pass

    def set_state(self, state: str, **fields: Any) -> None:
        pass

    def log_metrics(self, record: dict[str, Any]) -> None:
        pass

    def log_event(self, kind: str, **fields: Any) -> None:
        pass

    def stop_requested(self) -> bool:
        return False  # rank 0 reads the STOP file and tells the others

    def start_heartbeat(self) -> None:
        pass

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------------------
# Reading


def read_status(root: Path | str) -> dict[str, Any] | None:
    """The run's `status.json`, or None when it is missing or unreadable right now."""
    try:
        return json.loads((Path(root) / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def local_pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine is still running (a zombie counts as gone:
    a killed trainer whose parent has not reaped it yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def is_stale(status: dict[str, Any], now: float | None = None, stale_after_s: float = STALE_AFTER_S) -> bool:
    """True when an active run's heartbeat is older than ``stale_after_s``.

    A stale run whose process is also gone is `lost` (the launcher checks the process).
    """
    if status.get("state") not in ACTIVE_STATES:
        return False
    heartbeat = status.get("heartbeat") or 0
    return (now if now is not None else time.time()) - heartbeat > stale_after_s


def heartbeat_moves(root: Path | str, heartbeat: Any, within_s: float = CONFIRM_STALE_S,
                    poll_s: float = 0.5) -> dict[str, Any] | None:
    """The run's status once its heartbeat differs from ``heartbeat`` (within ``within_s``), else None.

    Which clock wrote the heartbeat does not matter: only whether it still changes.
    """
    deadline = time.monotonic() + within_s
    while True:
        status = read_status(root)
        if status is not None and status.get("heartbeat") != heartbeat:
            return status
        if time.monotonic() >= deadline:
            return None
        time.sleep(poll_s)


@dataclass
class JsonlTail:
    """Incremental reader of a `.jsonl` file: each `read_new()` returns only new complete lines.

    A last line without its newline is left for the next call (the writer may be
    mid-line); a line that is not valid JSON is skipped and counted in `bad_lines`.
    """

    path: Path
    offset: int = 0
    bad_lines: int = 0
    _inode: int | None = field(default=None, repr=False)

    def read_new(self) -> list[dict[str, Any]]:
        """New complete records since the last call ([] when nothing new or no file)."""
        return [record for chunk in self.iter_new() for record in chunk]

    def iter_new(self, chunk_bytes: int = 8 << 20) -> Iterator[list[dict[str, Any]]]:
        """New complete records in chunks of about ``chunk_bytes``, so that a first read of a
        huge file never holds all of its records in memory at once."""
        while True:
            records, more = self._read_chunk(chunk_bytes)
            if records:
                yield records
            if not more:
                return

    def _read_chunk(self, chunk_bytes: int) -> tuple[list[dict[str, Any]], bool]:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return [], False
        if self._inode is not None and (stat.st_ino != self._inode or stat.st_size < self.offset):
            self.offset = 0  # replaced or truncated: read it again from the start
        self._inode = stat.st_ino
        if stat.st_size == self.offset:
            return [], False
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read(chunk_bytes)
        end = chunk.rfind(b"\n")
        if end < 0:
            # No newline in a whole chunk: a line longer than the chunk, or one still being written.
            return [], False
        self.offset += end + 1
        more = self.offset < stat.st_size
        records = []
        for raw in chunk[: end + 1].splitlines():
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                self.bad_lines += 1
                continue
            if isinstance(record, dict):
                records.append(record)
        return records, more


class MetricsSeries:
    """The loss curve of a run: newest record per step wins (a resumed run rewrites steps)."""

    def __init__(self, path: Path | str) -> None:
        self._tail = JsonlTail(Path(path))
        self._by_step: dict[int, dict[str, Any]] = {}

    def refresh(self) -> int:
        """Read new lines; returns how many records arrived."""
        records = self._tail.read_new()
        for record in records:
            step = record.get("step")
            if isinstance(step, int):
                self._by_step[step] = record
        return len(records)

    def records(self) -> list[dict[str, Any]]:
        """All records, one per step, in step order."""
        return [self._by_step[s] for s in sorted(self._by_step)]

    def column(self, name: str) -> list[Any]:
        """One field of every record (None where a record lacks it), in step order."""
        return [r.get(name) for r in self.records()]


def read_jsonl(path: Path | str) -> list[dict[str, Any]]:
    """Every complete record of a `.jsonl` file (a convenience for tests and tools)."""
    return JsonlTail(Path(path)).read_new()
