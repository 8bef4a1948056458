"""Queued runs: a ``queue.json`` in the run folder on the share, so every desk that opens the workspace sees it.

A run is queued when Start finds every target it may use busy. Its run folder gets two files:

- ``queued-config.yaml``: the config as it was when queued, every option explicit and every
  path relative to the run folder, so that any desk (whatever its mount point) starts exactly
  the run that was queued, even if the config in ``configs/`` is edited meanwhile;
- ``queue.json``: its state (``queued`` → ``started`` | ``failed`` | ``cancelled``), what it
  needs (:class:`~.fit.Needs`), when and by which desk it was queued, and a position that
  orders the queue (the time it was queued, lowered by "move to top").

``queue.json`` is written atomically and only by the holder of the run's claim
(:mod:`.claim`): a start, a move, a cancel never overwrite each other's change. A run started from
the queue keeps its claim (the record of the start); queueing its folder again removes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from trainer.config import config_to_yaml
from trainer.fsutil import atomic_write_text, read_json_object
from trainer.rundir import ACTIVE_STATES

from ..targets.prepare import load_for_launch, path_options
from ..targets.runs import find_run_dirs, summarize_run
from .claim import CLAIM_FILE, Claim, holding, read_claim
from .errors import QueueError
from .fit import Needs

QUEUE_FILE = "queue.json"
QUEUED_CONFIG = "queued-config.yaml"
QUEUED, STARTED, FAILED, CANCELLED = "queued", "started", "failed", "cancelled"
VERSION = 1
MOVES = ("top", "up", "down")


@dataclass(frozen=True)
class QueueEntry:
    """One run folder's ``queue.json``, and who holds its claim right now."""

    run_dir: Path
    state: str                      # queued | started | failed | cancelled
    needs: Needs
    queued_at: float
    queued_by: str                  # the desk (user@host) that queued it
    position: float                 # lower comes first
    source_config: str = ""         # the config it was queued from (relative to the workspace when inside it)
    error: dict | None = None       # a start that failed: message, problems, target, time, desk
    started: dict | None = None     # the start: target, time, desk
    options: dict = field(default_factory=dict)  # launch options chosen at Start ({"snapshot_first": true})
    claim: Claim | None = None      # read with the entry; never stored in queue.json

    @property
    def name(self) -> str:
        """The run's name (its folder's)."""
        return self.run_dir.name

    @property
    def config(self) -> Path:
        """The config the run starts from."""
        return self.run_dir / QUEUED_CONFIG

    @property
    def waiting(self) -> bool:
        """Whether it waits for a target (queued, and nobody is starting it right now)."""
        return self.state == QUEUED and (self.claim is None or self.claim.purpose != "start")

    def to_json(self) -> dict[str, Any]:
        """The entry as queue.json holds it."""
        return {"version": VERSION, "state": self.state, "needs": self.needs.to_json(), "queued_at": self.queued_at,
                "queued_by": self.queued_by, "position": self.position, "source_config": self.source_config,
                "error": self.error, "started": self.started, "options": self.options}


def read_entry(run_dir: Path | str) -> QueueEntry | None:
    """The queue entry of ``run_dir`` (without its claim); None when it has none.

    A ``queue.json`` that cannot be read (cut short, edited by hand) comes back as a ``failed``
    entry that says so: it is shown, and can be queued again or removed, never skipped silently.
    """
    run_dir = Path(run_dir)
    path = run_dir / QUEUE_FILE
    if not path.exists():
        return None
    try:
        data = read_json_object(path)
        return QueueEntry(run_dir, str(data["state"]), Needs.from_json(data.get("needs")), float(data["queued_at"]),
                          str(data.get("queued_by", "")), float(data.get("position", data["queued_at"])),
                          str(data.get("source_config", "")), _dict_or_none(data.get("error")),
                          _dict_or_none(data.get("started")), _dict_or_none(data.get("options")) or {})
    except (ValueError, KeyError, TypeError) as exc:
        modified = _mtime(path)
        why = exc if isinstance(exc, ValueError) else f"{path} lacks {exc}"
        return QueueEntry(run_dir, FAILED, Needs(), modified, "", modified,
                          error={"message": f"its queue entry cannot be read: {why}",
                                 "problems": ["queue it again, or remove it from the queue"]})


def list_queue(workspace: Path | str) -> list[QueueEntry]:
    """The workspace's queued runs (waiting, being started, or failed to start), in queue order."""
    entries = []
    for run_dir in find_run_dirs(workspace, markers=(QUEUE_FILE,)):
        entry = read_entry(run_dir)
        if entry is not None and entry.state in (QUEUED, FAILED):
            entries.append(replace(entry, claim=read_claim(run_dir)))
    return sorted(entries, key=lambda e: (e.position, e.queued_at, e.name))


def enqueue(config_path: Path | str, workspace: Path | str | None, needs: Needs, desk: str,
            now: float | None = None, options: dict | None = None) -> QueueEntry:
    """Queue the run of ``config_path``: its run folder gets ``queued-config.yaml`` and ``queue.json``.

    ``options`` are launch options chosen at Start (plain JSON), applied when the run goes out.

    Raises TargetConfigError for a config that is not valid, QueueError when its run folder is
    already queued or still has a run going, ClaimHeld when a desk is acting on it right now.
    """
    source = Path(config_path).resolve()
    values = load_for_launch(source)
    run_dir = Path(values["output_dir"])
    summary = summarize_run(run_dir)
    if summary.state in (*ACTIVE_STATES, "launched"):
        raise QueueError(f"the run in {run_dir} is still {summary.state}",
                         "wait for it to end, or choose another output folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    now = time.time() if now is None else now
    previous, claim = read_entry(run_dir), read_claim(run_dir)
    if previous is not None and previous.state == STARTED and claim is not None and claim.purpose == "start":
        # The claim a start keeps (see dispatch): that run has ended (checked above), the folder is queued anew.
        with contextlib.suppress(FileNotFoundError):
            (run_dir / CLAIM_FILE).unlink()
    with holding(run_dir, desk, "queue"):
        refuse_queued(run_dir)
        header = (f"Queued by LoRA Studio on {desk} from {source}.\n"
                  "The run starts from this copy; its paths are relative to this folder.")
        atomic_write_text(run_dir / QUEUED_CONFIG, config_to_yaml(_relative_to(values, run_dir), header))
        entry = QueueEntry(run_dir, QUEUED, needs, now, desk, now, _shown_path(source, workspace),
                           options=dict(options or {}))
        write_entry(entry)
    return entry


def refuse_queued(run_dir: Path | str) -> None:
    """QueueError when the run in ``run_dir`` waits in the queue already (Start must not start or queue it twice)."""
    old = read_entry(run_dir)
    if old is not None and old.state == QUEUED:
        raise QueueError(f"{Path(run_dir).name} is already queued (since {_clock(old.queued_at)}, by {old.queued_by})",
                         "see the Fleet tab; cancel it there to start it again")


def write_entry(entry: QueueEntry) -> None:
    """Write ``entry``'s queue.json atomically (the caller holds the run's claim)."""
    atomic_write_text(entry.run_dir / QUEUE_FILE, json.dumps(entry.to_json(), indent=1, ensure_ascii=False) + "\n")


def cancel(run_dir: Path | str, desk: str) -> None:
    """Take a run out of the queue (its folder and queued config stay); ClaimHeld while a desk starts it."""
    with holding(run_dir, desk, "cancel"):
        entry = _still(run_dir, (QUEUED, FAILED))
        write_entry(replace(entry, state=CANCELLED))


def requeue(run_dir: Path | str, desk: str, now: float | None = None) -> None:
    """Queue a run whose start failed again, at the end of the queue (the failure is kept until it starts)."""
    now = time.time() if now is None else now
    with holding(run_dir, desk, "queue"):
        entry = _still(run_dir, (FAILED,))
        if not entry.config.exists():
            raise QueueError(f"{entry.name} has no {QUEUED_CONFIG} any more", "start it again from the Train tab")
        write_entry(replace(entry, state=QUEUED, position=now, queued_by=desk))


def move(workspace: Path | str, run_dir: Path | str, where: str, desk: str) -> None:
    """Move a waiting run to the ``top`` of the queue, or ``up``/``down`` one place (it swaps with its neighbour)."""
    if where not in MOVES:
        raise ValueError(f"move {where!r}: use one of {', '.join(MOVES)}")
    queue = [e for e in list_queue(workspace) if e.state == QUEUED]
    index = next((i for i, e in enumerate(queue) if e.run_dir == Path(run_dir)), None)
    if index is None:
        raise QueueError(f"{Path(run_dir).name} no longer waits in the queue", "it was started or cancelled meanwhile")
    if where == "top":
        if index > 0:
            with holding(run_dir, desk, "move"):
                entry = _still(run_dir, (QUEUED,))
                write_entry(replace(entry, position=queue[0].position - 1.0))
        return
    other = index - 1 if where == "up" else index + 1
    if not 0 <= other < len(queue):
        return  # already first (or last)
    a, b = queue[index], queue[other]
    with holding(a.run_dir, desk, "move"), holding(b.run_dir, desk, "move"):
        first, second = _still(a.run_dir, (QUEUED,)), _still(b.run_dir, (QUEUED,))
        # Equal positions (queued in the same instant on two desks) still change places.
        position_a = second.position if second.position != first.position else second.position + (
            -0.001 if where == "up" else 0.001)
        write_entry(replace(first, position=position_a))
        write_entry(replace(second, position=first.position))


def _still(run_dir: Path | str, states: tuple[str, ...]) -> QueueEntry:
    """The entry as it is now, under the claim; QueueError when it has left ``states`` meanwhile."""
    entry = read_entry(run_dir)
    if entry is None or entry.state not in states:
        state = entry.state if entry else "gone"
        raise QueueError(f"{Path(run_dir).name} is {state} now", "the Fleet tab shows where it stands")
    return entry


def _relative_to(values: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """``values`` with every path relative to ``run_dir`` where it can be (the share's mount point differs per desk)."""
    out = dict(values)
    names = [*path_options(), *(["resume"] if values.get("resume") not in (None, "auto", "never") else [])]
    for name in names:
        if out.get(name):
            try:
                out[name] = Path(os.path.relpath(out[name], run_dir)).as_posix()
            except ValueError:  # another drive (Windows): stays absolute
                pass
    return out


def _shown_path(source: Path, workspace: Path | str | None) -> str:
    if workspace is not None:
        try:
            return source.relative_to(Path(workspace).resolve()).as_posix()
        except ValueError:
            pass
    return str(source)


def _dict_or_none(value: Any) -> dict | None:
    return value if isinstance(value, dict) else None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _clock(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(when))
