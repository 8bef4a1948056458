"""The auto-caption dialog's words: counts and durations, the running job's progress line, a
preview row shown in full, and a list of errors. Pure text; what goes into a rich-text label
is HTML-escaped here, since captions and error messages may hold ``<`` and ``&``.
"""

from __future__ import annotations

import html
from typing import Any

from .plan import Outcome, PreviewRow

# The job's states before it captions anything, and what the dialog says meanwhile.
ACTIVE_PHASES = {"starting": "Starting…", "preparing": "Loading the model…"}


def duration(seconds: float) -> str:
    """``42 s`` or, from 90 s on, ``3 min 05 s``."""
    seconds = int(round(seconds))
    return f"{seconds} s" if seconds < 90 else f"{seconds // 60} min {seconds % 60:02d} s"


def progress_text(status: dict[str, Any]) -> str:
    """The line under the progress bar while the job captions: done of total, speed, time left."""
    total, step = int(status.get("total_steps") or 0), int(status.get("step") or 0)
    rate = float(status.get("images_per_s") or 0.0)
    text = f"Captioning {step:,} / {total:,}"
    if rate > 0:
        text += f" · {rate:.1f} images/s"
    if status.get("eta_s"):
        text += f" · about {duration(float(status['eta_s']))} left"
    return text


def row_detail_html(row: PreviewRow) -> str:
    """One preview row in full: the image, its caption now and after (or why it stays)."""
    after = html.escape(row.after) if row.outcome is Outcome.CHANGE else f"<i>{html.escape(row.note)}</i>"
    return (f"<b>{html.escape(row.rel)}</b><br>Now: {html.escape(row.now) or '<i>(empty)</i>'}"
            f"<br>After: {after}")


def errors_html(title: str, lines: list[str]) -> str:
    """``title`` in bold, then one bullet per non-empty line."""
    text = "<b>" + html.escape(title) + "</b>"
    return text + "".join(f"<br>• {html.escape(line)}" for line in lines if line)
