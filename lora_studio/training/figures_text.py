"""The training page's figures as text: what a run will do, how long, and how much GPU memory."""

from __future__ import annotations

import math

from trainer.estimate import MemoryEstimate, MemoryLever
from trainer.wording import plural, with_article

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
                  f"{plural(figures.buckets, 'bucket')}")
    text = (f"{amount}<br><b>{figures.steps_per_epoch}</b> steps per epoch, "
            f"<b>{figures.total_steps}</b> steps in {plural(figures.epochs, 'epoch')}")
    processes = analysis.processes
    if processes.count > 1:
        text += (f"<br>Over <b>{processes.count}</b> processes ({processes.how}): each step trains "
                 f"{processes.count} batches side by side")
    if analysis.seconds:
        text += f"<br>Time: {duration_text(analysis.seconds)} (at the speed of run {analysis.speed_source})"
    return text


# Common training GPUs by memory (GB), for "fits on": the smallest class the estimate fits with
# a margin for the estimate's error and the allocator's fragmentation.
GPU_CLASSES = ((8, "RTX 3070/4060"), (12, "RTX 3060/4070"), (16, "RTX 4080, A4000"), (24, "RTX 3090/4090, L4"),
               (32, "RTX 5090, V100 32GB"), (40, "A100 40GB"), (48, "RTX A6000, L40S"), (80, "A100/H100"),
               (141, "H200"))
FIT_MARGIN = 0.9  # use at most 90 % of a card


def gpu_class(total_gb: float) -> tuple[int, str] | None:
    """(GB, example GPUs) of the smallest common GPU class the estimate fits on; None when it fits on none."""
    return next(((size, name) for size, name in GPU_CLASSES if total_gb <= size * FIT_MARGIN), None)


def fits_text(total_gb: float) -> str:
    """The smallest common GPU class the estimate fits on, or that it fits on none of them (HTML)."""
    fit = gpu_class(total_gb)
    if fit is not None:
        # The class stays on one line: cut anywhere ("(RTX" | "3070/4060) GPU") it reads as two things.
        return "fits " + with_article(f"{fit[0]} GB ({fit[1]}) GPU").replace(" ", "&nbsp;")
    return "more than any single GPU holds: lower the batch size or resolution, or turn on gradient checkpointing"


_NOWRAP = " style='white-space:nowrap'"


def levers_html(levers: tuple[MemoryLever, ...]) -> str:
    """Which settings fit which GPU, a row per memory lever turned on (the run's own settings in bold);
    empty where every row fits the same GPUs (SD 1.5 fits an 8 GB card whatever is on)."""
    fits = [gpu_class(lever.total_gb) for lever in levers]
    if len(set(fits)) < 2:
        return ""
    rows = []
    for lever, fit in zip(levers, fits):
        gpu = f"→ {with_article(f'{fit[0]} GB GPU')}" if fit else "→ no single GPU"
        cells = (lever.label, f"{lever.total_gb:.1f} GB", gpu)
        bold = ("<b>", "</b>") if lever.current else ("", "")
        # The figures never wrap (a number apart from its unit reads badly); the setting's name may.
        styles = ("", _NOWRAP, _NOWRAP)
        text = "".join(f"<td{style}>{bold[0]}{cell}{bold[1]}</td>" for style, cell in zip(styles, cells))
        rows.append(f"<tr>{text}</tr>")
    mine = " (these settings in bold)" if any(lever.current for lever in levers) else ""
    return (f"<br>Which settings fit which GPU{mine}:"
            f"<table cellspacing='0' cellpadding='3'>{''.join(rows)}</table>")


def memory_html(memory: MemoryEstimate | None) -> str:
    """The GPU memory estimate, the GPUs it fits, what the memory levers give, its parts and where its
    constants come from."""
    if memory is None:
        return ""
    parts = ", ".join(f"{k} {v:.1f}" for k, v in memory.parts.items())
    levers = levers_html(memory.levers)
    return (f"GPU memory: about <b>{memory.total_gb:.1f} GB</b>: {fits_text(memory.total_gb)}"
            f"{levers or '<br>'}<small>{parts} GB; an estimate (±30%) from {memory.source}</small>")
