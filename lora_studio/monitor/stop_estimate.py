"""How long a graceful stop still waits: the rest of the current step, from the run's metrics.

The trainer looks at the STOP file after each optimizer step and then saves a checkpoint, so
a stop asked for in the middle of a 60 s step waits for the rest of it. metrics.jsonl has one
record per step with the time it ended: the usual step duration minus the time since the
last step ended is what is left. Pure and Qt-free: the Runs page calls it on every refresh
with the last few records and the clock.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

# The median of the last few steps: one slow step (samples drawn, a checkpoint saved) or the
# gap of a resume does not throw the estimate off, and a change of pace shows within a few steps.
RECENT_STEPS = 6


@dataclass(frozen=True)
class StepEstimate:
    """The current step as far as the metrics tell."""

    step_s: float | None    # the usual duration of one step (None: fewer than two steps logged)
    left_s: float | None    # seconds until the current step should end; negative once it is overdue


def step_duration(steps: Sequence[float], times: Sequence[float]) -> float | None:
    """The median time per step over the last few records; None with fewer than two of them.

    Records may be a few steps apart (``log_every_n_steps``): an interval counts per step.
    """
    pairs = [(float(s), float(t)) for s, t in zip(steps, times) if math.isfinite(s) and math.isfinite(t)]
    pairs = pairs[-(RECENT_STEPS + 1):]
    durations = [(t1 - t0) / (s1 - s0) for (s0, t0), (s1, t1) in zip(pairs, pairs[1:]) if s1 > s0 and t1 >= t0]
    return statistics.median(durations) if durations else None


def estimate_step(steps: Sequence[float], times: Sequence[float], now: float) -> StepEstimate:
    """What is left of the step in progress at ``now`` (a ``time.time()`` value)."""
    duration = step_duration(steps, times)
    finite = [float(t) for t in times if math.isfinite(t)]
    if duration is None or not finite:
        return StepEstimate(None, None)
    # The trainer's clock (another machine, maybe) may run a little ahead of ours: a step
    # cannot have been going for less than no time.
    elapsed = max(0.0, now - finite[-1])
    return StepEstimate(duration, duration - elapsed)


def _seconds(value: float) -> str:
    if value < 90:
        return f"{max(1, round(value))} s"
    return f"{value / 60:.0f} min"


def stopping_text(state: str, estimate: StepEstimate) -> str:
    """What the page says while a stop waits for the trainer (``state`` from status.json)."""
    if state == "saving":
        return "Stopping: saving a checkpoint…"
    if state == "sampling":
        return "Stopping after this step: drawing its samples, then saving a checkpoint…"
    if state != "training":
        # Loading the model or caching latents: the trainer looks at STOP after its first step.
        return "Stopping after the first step (the trainer is still getting ready)…"
    if estimate.left_s is None or estimate.step_s is None:
        return "Stopping after the current step…"
    if estimate.left_s >= 0.5:
        return f"Stopping after this step (about {_seconds(estimate.left_s)})…"
    overdue = -estimate.left_s
    if overdue <= max(estimate.step_s, 5.0):
        return "Stopping after this step (any moment now)…"
    return f"Stopping after this step (it is {_seconds(overdue)} longer than usual)…"
