"""The Runs page's words for the run it shows: the details line under the progress bar (epoch,
speed, memory, time left, heartbeat, where it runs) and the error line. Pure text from the
run's summary, status and metrics; the page (:mod:`.monitor_page`) puts it in its labels.
"""

from __future__ import annotations

import math

from ..targets.placement import Placement
from ..targets.runs import RunSummary
from .runs_model import age_text
from .series import MetricSeries

# The states in which the trainer works towards its last step, so a time left means something.
_WORKING = ("training", "sampling", "saving", "preparing")
_ENDED = ("completed", "stopped", "failed")
# Clocks this far apart are worth a word; below it, what the desk measures is mostly the delay of its looks.
CLOCK_NOTICE_S = 30.0


def _eta(seconds: float | None) -> str:
    if not seconds or math.isnan(seconds):
        return "—"
    return age_text(seconds)


def _heartbeat_text(summary: RunSummary) -> str:
    """How old the heartbeat is, and how far the trainer machine's clock is off from this computer's."""
    age_s, offset_s = summary.heartbeat_age_s or 0.0, summary.clock_offset_s
    if age_s < 0:  # from the future by the clocks (the desk has not seen it beat yet): its clock is ahead
        text, offset_s = "heartbeat just now", -age_s
    else:
        text = f"heartbeat {age_text(age_s)} ago"
    if offset_s is not None and abs(offset_s) > CLOCK_NOTICE_S:
        way = "ahead of" if offset_s > 0 else "behind"
        text += f" (its machine's clock is {age_text(abs(offset_s))} {way} this computer's)"
    return text


def details_text(summary: RunSummary, status: dict, series: MetricSeries | None, placement: Placement | None) -> str:
    """The details line: where the run is and how fast it goes, its parts joined by " · "."""
    if summary.kind == "queued" and summary.state == "failed":  # its start from the queue failed: the error says why
        return f"{summary.note}: it waits for you (Queue again once it is fixed, or Cancel…)"
    if summary.kind == "queued":  # in the fleet's queue: no trainer, no target yet
        return f"{summary.note} · it starts by itself when a target frees up (the Fleet tab moves it in the queue)"
    total_epochs = status.get("total_epochs")  # unknown while the trainer starts up
    parts = [f"epoch {status.get('epoch') or 1} of {total_epochs}"] if total_epochs else []
    if summary.state == "queued":  # held by a Ray cluster: no trainer yet, so no epoch either
        parts = ["waits in the Ray cluster's queue for a node with the GPUs and CPUs it asks for"]
    if series is not None and len(series):
        rate, tokens = series.column("samples_per_s")[-1], series.column("tokens_per_s")[-1]
        if not math.isnan(tokens):  # a language model: its rate is in tokens
            parts.append(f"{tokens:,.0f} tokens/s ({rate:.1f} examples/s)")
        elif not math.isnan(rate):
            parts.append(f"{rate:.2f} images/s")
        memory = series.column("mem_gb")[-1]
        if not math.isnan(memory):
            parts.append(f"GPU memory {memory:.1f} GB")
    if summary.state in _WORKING:
        parts.append(f"ETA {_eta(status.get('eta_s'))}")
    if summary.heartbeat_age_s is not None and summary.state not in _ENDED:
        parts.append(_heartbeat_text(summary))
    if placement is not None:  # a multi-node run: its nodes are listed below the line
        parts.append(f"on {placement.describe()} (below)")
    elif summary.target:
        parts.append(f"on {summary.target}{' (' + summary.host + ')' if summary.host else ''}")
    return " · ".join(parts)


def error_text(summary: RunSummary) -> str:
    """Why the run stopped, with what to do ("" when nothing is wrong)."""
    if summary.state == "lost":
        return ("The trainer stopped sending heartbeats and its process is gone (the machine may have "
                "died). Resume continues from the last checkpoint.")
    error = summary.error or {}
    return f"{error.get('message', '')}" + (f" — {error['hint']}" if error.get("hint") else "")
