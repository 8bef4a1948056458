"""The claim on a queued run: one file made with an atomic create, so one desk at a time acts on it.

Every change to a queued run's ``queue.json`` (its start above all, but also a move, a cancel or
queueing it again) is made by whoever holds its claim, ``<run>/queue.claim``. The claim is taken
with ``os.open(O_CREAT | O_EXCL)``: the file system, the share's server for a share, lets exactly
one of two desks create it, however close together they try. The holder reads ``queue.json``
again after taking the claim (another desk may have started the run meanwhile), does its change,
and removes the claim. A desk that died while holding one leaves it behind: such a claim is
broken after :data:`STALE_CLAIM_S` (see :func:`break_stale`).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import secrets
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from .errors import QueueError

CLAIM_FILE = "queue.claim"
RECOVERY_CLAIM_FILE = "recovery.claim"  # held while a desk restarts a lost run (see fleet.recovery_pass)
# A start (preflight, SSH login, doctor, launch) takes a minute or two at most: a claim this old
# belongs to a desk that crashed or lost the share in the middle of it.
STALE_CLAIM_S = 15 * 60.0


def this_desk() -> str:
    """How this desk names itself in claims and queue entries: ``user@host``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment or the password database
        user = "user"
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True)
class Claim:
    """Who holds a queued run's claim, since when, and for what (``start``, ``move``, ``cancel`` ...)."""

    desk: str
    purpose: str
    time: float
    pid: int
    token: str          # tells this claim from a later one of the same desk
    target: str = ""    # the target a start is going to

    def age(self, now: float | None = None) -> float:
        """Seconds since the claim was taken."""
        return (time.time() if now is None else now) - self.time


class ClaimHeld(QueueError):
    """Another desk (or another part of this app) holds the claim; the message says who and why."""

    def __init__(self, claim: Claim | None, run_dir: Path) -> None:
        self.claim = claim
        if claim is None:
            what = "another desk is changing it right now"
        elif claim.purpose == "start":
            what = f"{claim.desk} is starting it{' on ' + claim.target if claim.target else ''} right now"
        else:
            what = f"{claim.desk} is changing it right now ({claim.purpose})"
        super().__init__(f"{Path(run_dir).name}: {what}", "try again in a moment")


def try_claim(run_dir: Path | str, desk: str, purpose: str, target: str = "", *, file: str = CLAIM_FILE) -> Claim | None:
    """Take the claim of ``run_dir``'s queued run; None when someone holds it already.

    ``file`` names another claim of the folder (the restart of a lost run has its own, :data:`RECOVERY_CLAIM_FILE`).
    """
    claim = Claim(desk, purpose, time.time(), os.getpid(), secrets.token_hex(8), target)
    path = Path(run_dir) / file
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    except FileExistsError:
        return None
    try:
        os.write(fd, (json.dumps(asdict(claim)) + "\n").encode("utf-8"))
        os.fsync(fd)  # the other desks read who holds it (and since when) from the share
    finally:
        os.close(fd)
    return claim


def read_claim(run_dir: Path | str, *, file: str = CLAIM_FILE) -> Claim | None:
    """The claim on ``run_dir`` now, or None when there is none.

    A claim file that cannot be parsed (its creator is between the create and the write, or
    died there) is still a claim: it comes back with an unknown desk and its file's age.
    """
    path = Path(run_dir) / file
    try:
        text = path.read_text(encoding="utf-8")
        modified = path.stat().st_mtime
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return Claim("another desk", "unknown", time.time(), 0, "")
    return _parse(text) or Claim("another desk", "unknown", modified, 0, "")


def release(run_dir: Path | str, claim: Claim, *, file: str = CLAIM_FILE) -> None:
    """Give up ``claim``; a claim that is no longer this one (it was broken as stale) is left alone."""
    current = read_claim(run_dir, file=file)
    if current is None or current.token != claim.token:
        return
    with contextlib.suppress(FileNotFoundError):
        (Path(run_dir) / file).unlink()


@contextlib.contextmanager
def holding(run_dir: Path | str, desk: str, purpose: str) -> Iterator[Claim]:
    """The claim of ``run_dir`` for the ``with`` block; :class:`ClaimHeld` when someone else has it."""
    claim = try_claim(run_dir, desk, purpose)
    if claim is None:
        raise ClaimHeld(read_claim(run_dir), Path(run_dir))
    try:
        yield claim
    finally:
        release(run_dir, claim)


def break_stale(run_dir: Path | str, now: float | None = None, stale_after_s: float = STALE_CLAIM_S, *,
                file: str = CLAIM_FILE) -> Claim | None:
    """Remove a claim older than ``stale_after_s`` (its desk died holding it); returns the broken claim.

    The claim is renamed away first: of two desks breaking it at once, only one rename succeeds.
    If the renamed file turns out to be a fresh claim (the stale one was released and taken again
    in between), it is put back, unless someone claimed the run in the meantime too.
    """
    run_dir = Path(run_dir)
    now = time.time() if now is None else now
    claim = read_claim(run_dir, file=file)
    if claim is None or claim.age(now) < stale_after_s:
        return None
    aside = run_dir / f".{file}.broken-{secrets.token_hex(4)}"
    try:
        os.rename(run_dir / file, aside)
    except FileNotFoundError:
        return None  # released, or another desk broke it first
    try:
        taken = _parse(aside.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        taken = None
    if taken is not None and taken.age(now) < stale_after_s:
        with contextlib.suppress(FileExistsError):
            os.link(aside, run_dir / file)  # never over a claim made meanwhile
        aside.unlink()
        return None
    aside.unlink()
    return taken or claim


def _parse(text: str) -> Claim | None:
    try:
        data = json.loads(text)
        return Claim(str(data["desk"]), str(data["purpose"]), float(data["time"]), int(data["pid"]),
                     str(data["token"]), str(data.get("target", "")))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
