"""Preflights made ahead: the run that goes to a target next is checked while the target's last run ends.

A start from the queue is a preflight (a login, the trainer's doctor, the config check: seconds)
and then the launch. Made after the target frees up, the preflight is time the target stands idle
between two runs. So a dispatch pass preflights the run that goes next to a target whose running
job is expected to end within :data:`AHEAD_WINDOW_S`, keeps the result here, and when the slot
frees the start checks only what may have changed since: that the slot is still free (the launch's
busy check), that the run's config in its folder is the one that was checked, that the target's
settings are the same, and that the check is younger than :data:`FRESH_S`. Anything else and the
start makes its whole preflight again, as without this.

A preflight ahead holds the run's claim (purpose ``prepare``) because it writes the run folder's
``config.yaml``, which another desk's start would write too. Its failures are not recorded in the
queue: the start's own preflight says them. The GPUs it sees are the running job's, so they are
not noted for the fit check either.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trainer.rundir import CONFIG_FILE

from ..targets.model import Target
from ..targets.preflight import PreflightReport
from ..targets.prepare import PreparedRun
from ..targets.runs import RunSummary
from .claim import release, try_claim
from .queue import QUEUED, QUEUED_CONFIG, QueueEntry, read_entry

# Prepare the next run when the running one should end within this: soon enough that little can
# change before the start, early enough for a preflight of seconds to finish first.
AHEAD_WINDOW_S = 120.0
# A preflight older than this is made again at the start (and one that failed is tried again).
FRESH_S = 300.0

#: The preflight of a queued run on a target that runs something now: ``(prepared, report)``.
Check = Callable[[QueueEntry, Target], tuple[PreparedRun | None, PreflightReport]]


@dataclass(frozen=True)
class ReadyStart:
    """A preflight made ahead for one queued run on one target, as it ended."""

    target: Target
    prepared: PreparedRun | None
    report: PreflightReport
    made_at: float
    digest: str   # of the run's queued config and its folder's config.yaml as the preflight left them

    @property
    def ok(self) -> bool:
        """Whether it passed (a failed one only keeps the pass from trying again at once)."""
        return self.prepared is not None and self.report.ok

    def fresh(self, now: float, fresh_s: float) -> bool:
        """Whether it is younger than ``fresh_s`` at ``now`` (older, the start checks everything again)."""
        return now - self.made_at < fresh_s


def configs_digest(run_dir: Path) -> str:
    """What a start checks was not rewritten since its preflight: the queued config and ``config.yaml``."""
    digest = hashlib.sha256()
    for name in (QUEUED_CONFIG, CONFIG_FILE):
        try:
            digest.update((run_dir / name).read_bytes())
        except OSError:
            digest.update(b"-")  # missing now: differs from any file that was there
        digest.update(b"\0")
    return digest.hexdigest()


def ends_soon(running: list[RunSummary], now: float | None = None, window_s: float = AHEAD_WINDOW_S) -> bool:
    """Whether one of ``running`` should end within ``window_s``, going by its pace so far.

    A run that has made no step yet has no pace: it is not expected to end soon.
    """
    now = time.time() if now is None else now
    for run in running:
        if not run.total_steps or run.step <= 0 or run.started_at is None:
            continue
        elapsed = max(0.0, now - run.started_at)  # from its start: its start-up counts, so this errs long
        if elapsed / run.step * max(0, run.total_steps - run.step) <= window_s:
            return True
    return False


@dataclass(frozen=True)
class Preparer:
    """What a dispatch pass needs to make preflights ahead: where they are kept and how one is made."""

    starts: "StartsAhead"
    check: Check


class StartsAhead:
    """The preflights made ahead, one per queued run, kept from one dispatch pass to the next.

    Thread-safe: a pass makes preflights for different targets in threads of their own.
    """

    def __init__(self, *, fresh_s: float = FRESH_S, window_s: float = AHEAD_WINDOW_S) -> None:
        self.fresh_s, self.window_s = fresh_s, window_s
        self._lock = threading.Lock()
        self._ready: dict[Path, ReadyStart] = {}

    def wanted(self, entry: QueueEntry, target: Target, now: float | None = None) -> bool:
        """Whether ``entry`` needs a preflight ahead for ``target`` (none made for it lately)."""
        now = time.time() if now is None else now
        with self._lock:
            made = self._ready.get(entry.run_dir)
        return made is None or made.target != target or not made.fresh(now, self.fresh_s)

    def prepare(self, entry: QueueEntry, target: Target, desk: str, check: Check) -> ReadyStart | None:
        """Preflight ``entry`` for ``target`` under the run's claim and keep the result.

        Returns it, or None when another desk holds the claim or the run no longer waits.
        """
        claim = try_claim(entry.run_dir, desk, "prepare", target.name)
        if claim is None:
            return None
        try:
            current = read_entry(entry.run_dir)
            if current is None or current.state != QUEUED:
                return None
            try:
                prepared, report = check(current, target)
            except Exception as exc:  # noqa: BLE001 - only an early look: the start's own preflight says why
                prepared, report = None, PreflightReport(target.name)
                report.add("ahead", "error", str(exc) or exc.__class__.__name__)
            made = ReadyStart(target, prepared, report, time.time(), configs_digest(entry.run_dir))
            with self._lock:
                self._ready[entry.run_dir] = made
            return made
        finally:
            release(entry.run_dir, claim)

    def checked_for(self, entry: QueueEntry, now: float | None = None) -> Target | None:
        """The target a passing, fresh preflight ahead of ``entry`` was made for (None: none)."""
        now = time.time() if now is None else now
        with self._lock:
            made = self._ready.get(entry.run_dir)
        return made.target if made is not None and made.ok and made.fresh(now, self.fresh_s) else None

    def take(self, entry: QueueEntry, target: Target, now: float | None = None) -> ReadyStart | None:
        """The passing preflight made ahead for ``entry`` on ``target``, if it still holds; it is used up."""
        now = time.time() if now is None else now
        with self._lock:
            made = self._ready.pop(entry.run_dir, None)
        if made is None or not made.ok or made.target != target or not made.fresh(now, self.fresh_s):
            return None
        if configs_digest(entry.run_dir) != made.digest:
            return None  # another desk (or the user) rewrote the run's config since: check it again
        return made

    def waiting(self, now: float | None = None) -> bool:
        """Whether a passing preflight waits for its target to free up (the app then looks more often)."""
        now = time.time() if now is None else now
        with self._lock:
            return any(made.ok and made.fresh(now, self.fresh_s) for made in self._ready.values())

    def forget_except(self, run_dirs: set[Path]) -> None:
        """Drop what was made for runs that no longer wait in the queue (started elsewhere, cancelled)."""
        with self._lock:
            for run_dir in [r for r in self._ready if r not in run_dirs]:
                del self._ready[run_dir]
