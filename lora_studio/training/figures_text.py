"""The training page's figures as text: what a run will do, how long, and how much GPU memory."""

from __future__ import annotations

import math

from trainer.estimate import MemoryEstimate

from .analysis import Analysis


def duration_text(seconds: float) -> str:
    """"about 12 min", "about 2.5 h"."""
    minutes = math.ceil(seconds / 60)
    return f"about {minutes} min" if minutes < 90 else f"about {minutes / 60:.1f} h"


def figures_html(analysis: Analysis) -> str:
    """The data, steps and (when an earlier run gives a speed) time of the checked settings."""
    figures = analysis.figures
    if figures is None:
        return "Steps appear when the settings are valid."
    if figures.unit == "examples":
        held = f" ({analysis.held_out} held out for eval_loss)" if analysis.held_out else ""
        amount = f"<b>{figures.images}</b> examples to train on{held}"
    else:
        amount = (f"<b>{figures.images}</b> images ({figures.images_with_repeats} with repeats) in "
                  f"{figures.buckets} bucket(s)")
    text = (f"{amount}<br><b>{figures.steps_per_epoch}</b> steps per epoch, "
            f"<b>{figures.total_steps}</b> steps in {figures.epochs} epoch(s)")
    if analysis.seconds:
        text += f"<br>Time: {duration_text(analysis.seconds)} (at the speed of run {analysis.speed_source})"
    return text


def memory_html(memory: MemoryEstimate | None) -> str:
    """The GPU memory estimate with its parts and where its constants come from."""
    if memory is None:
        return ""
    parts = ", ".join(f"{k} {v:.1f}" for k, v in memory.parts.items())
    return (f"GPU memory: about <b>{memory.total_gb:.1f} GB</b><br><small>{parts} GB; an estimate "
            f"(±30%) from {memory.source}</small>")
