"""The bar above the caption grid that brings back an auto-caption job of the open dataset.

Shown when the dataset has a job that runs on (on a GPU VM whose dialog was closed, or on
any target after the app was closed and opened again: jobs run detached) or ended with
results nobody applied yet (the app was closed meanwhile).
One line, like a browser's notification bar: what the job is, and one button to act.
"""

from __future__ import annotations

import html
import time

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from ..resources import icon
from ..theme import ACCENT
from .reattach import PendingJob

# A tint of the accent colour reads as "information" on the light and the dark theme alike.
STYLE = ("QFrame#AutoCaptionJobBar { background: rgba(99, 102, 241, 0.10); "
         "border: none; border-bottom: 1px solid rgba(99, 102, 241, 0.35); }"
         "QFrame#AutoCaptionJobBar QLabel { background: transparent; }")


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'s' if count != 1 else ''}"


def _when(started_at: float) -> str:
    if not started_at:
        return ""
    same_day = time.localtime(started_at)[:3] == time.localtime()[:3]
    return time.strftime("%H:%M" if same_day else "%d %b %H:%M", time.localtime(started_at))


def describe(job: PendingJob) -> tuple[str, str]:
    """(headline, details) of the bar for ``job``."""
    where = f" on {job.target}" if job.target else ""
    model = job.request.model.name
    started = _when(job.started_at)
    since = f", started {started}" if started else ""
    if job.running:
        progress = f"{job.step:,} of {_plural(job.total, 'image')}" if job.step else _plural(job.total, "image")
        return f"Auto-caption is running{where}", f"{progress} · {model}, {job.request.mode}{since}"
    if job.state == "interrupted":
        return ("An auto-caption job was interrupted",
                f"{_plural(job.results, 'image')} captioned{where} before it ended · nothing is changed until you "
                "apply them")
    return ("Auto-caption results are waiting",
            f"{_plural(job.results, 'image')} captioned{where} with {model} ({job.request.mode}) · nothing is "
            "changed until you apply them")


class JobBar(QFrame):
    """One pending job: "Show" opens the dialog on it, "Discard"/"Hide" puts it away."""

    showRequested = Signal(object)  # PendingJob
    discardRequested = Signal(object)  # PendingJob (finished: never offered again)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("AutoCaptionJobBar")
        self.setStyleSheet(STYLE)
        self.job: PendingJob | None = None
        self.icon = QLabel(self)
        self.icon.setPixmap(icon("autocaption").pixmap(QSize(18, 18)))
        self.text = QLabel(self)
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.text.setWordWrap(True)  # a narrow grid gets two lines, never a wider window
        self.show_button = QPushButton(self)
        self.show_button.setDefault(False)
        self.show_button.setStyleSheet(f"QPushButton {{ font-weight: 600; color: {ACCENT}; }}")
        self.discard_button = QPushButton(self)
        for button in (self.show_button, self.discard_button):
            button.setAutoDefault(False)
            button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.show_button.clicked.connect(lambda: self.job is not None and self.showRequested.emit(self.job))
        self.discard_button.clicked.connect(self._discard)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 6, 8, 6)
        layout.setSpacing(10)
        layout.addWidget(self.icon)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.show_button)
        layout.addWidget(self.discard_button)
        self.hide()

    def set_job(self, job: PendingJob | None) -> None:
        """Show ``job`` (None hides the bar)."""
        self.job = job
        if job is None:
            self.hide()
            return
        headline, details = describe(job)
        self.text.setText(f"<b>{html.escape(headline)}</b>&nbsp;&nbsp;"
                          f"<span style='color: {self._muted()}'>{html.escape(details)}</span>")
        self.text.setToolTip(f"Run folder: {job.run_dir}")
        self.show_button.setText("Show progress…" if job.running else "Review and apply…")
        self.discard_button.setText("Hide" if job.running else "Discard")
        self.discard_button.setToolTip("Hide this bar; the job keeps running" if job.running
                                       else "Forget these results (the captions stay as they are)")
        self.show()

    def _muted(self) -> str:
        """Secondary text: the text colour two thirds of the way to the background (either theme)."""
        palette = self.palette()
        text, back = palette.color(QPalette.ColorRole.WindowText), palette.color(QPalette.ColorRole.Window)
        mix = [round(t * 0.68 + b * 0.32) for t, b in ((text.red(), back.red()), (text.green(), back.green()),
                                                         (text.blue(), back.blue()))]
        return "#{:02x}{:02x}{:02x}".format(*mix)

    def _discard(self) -> None:
        job = self.job
        self.set_job(None)
        if job is not None and not job.running:
            self.discardRequested.emit(job)
