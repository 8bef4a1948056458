"""What the window tells the user: status-bar messages, progress, the save and format labels, warnings.

The controllers are given this object instead of the window, so none of them reaches into
the status bar's widgets or needs the window to put up a message box.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QLabel, QMessageBox, QProgressBar, QPushButton, QStatusBar

# A save shows a progress bar only when it takes a while; below this many files it is quick.
SAVE_PROGRESS_FROM = 200


class StatusStrip(QObject):
    """The permanent widgets of ``bar`` and the ways to tell the user something.

    The progress bar is shared: the image check holds it while it runs (``start_progress``
    to ``finish_progress``), and a long save shows its progress only when it is free.
    """

    scanCancelled = Signal()  # the user stopped the workspace scan
    openCancelled = Signal()  # the user stopped opening a dataset folder

    def __init__(self, bar: QStatusBar) -> None:
        super().__init__(bar)
        self.bar = bar
        self.last_error = ""
        self._held = False  # the image check owns the progress bar
        self.progress = QProgressBar(bar)
        self.progress.setMaximumWidth(180)
        self.progress.setTextVisible(False)
        self.progress.hide()
        self.format_label = QLabel("", bar)
        self.save_label = QLabel("", bar)
        self.cancel_scan = QPushButton("Cancel scan", bar)
        self.cancel_scan.setToolTip("Stop scanning the workspace's folders")
        self.cancel_scan.hide()
        self.cancel_scan.clicked.connect(self.scanCancelled)
        self.cancel_open = QPushButton("Cancel", bar)
        self.cancel_open.setObjectName("cancelOpen")
        self.cancel_open.setToolTip("Stop opening this folder; the dataset on screen stays open")
        self.cancel_open.hide()
        self.cancel_open.clicked.connect(self.openCancelled)
        for widget in (self.cancel_scan, self.cancel_open, self.progress, self.format_label, self.save_label):
            bar.addPermanentWidget(widget)

    # -- messages ------------------------------------------------------------------------
    def show_message(self, text: str, timeout_ms: int = 0) -> None:
        """A line in the status bar (for ``timeout_ms``, or until the next one when 0)."""
        self.bar.showMessage(text, timeout_ms)

    def warn(self, title: str, message: str) -> None:
        """Tell the user (non-blocking) and put it in the status bar."""
        self.bar.showMessage(message, 15000)
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self.bar.window())
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.last_error = message

    def show_format(self, fmt: str) -> None:
        """The caption format of the open dataset ('' when none is open)."""
        self.format_label.setText(f"Format: {fmt}" if fmt else "")

    def show_save_state(self, text: str) -> None:
        """Whether the captions are saved ('✓ All saved', '● 3 unsaved…')."""
        self.save_label.setText(text)

    def show_open_cancel(self, visible: bool) -> None:
        """The Cancel button of a dataset open under way."""
        self.cancel_open.setVisible(visible)

    def show_scan_cancel(self, visible: bool) -> None:
        """The Cancel button of a workspace scan under way."""
        self.cancel_scan.setVisible(visible)

    # -- progress ------------------------------------------------------------------------
    def show_busy(self) -> None:
        """A progress bar that only says "working" (a task that cannot count)."""
        self.progress.setRange(0, 0)
        self.progress.show()

    def hide_busy(self) -> None:
        """The end of ``show_busy``."""
        self.progress.hide()

    def start_progress(self, total: int) -> None:
        """Hold the progress bar for ``total`` steps (shown only when there are any)."""
        self._held = True
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(0)
        self.progress.setVisible(total > 0)

    def advance_progress(self, steps: int) -> None:
        """``steps`` more of the held progress are done."""
        self.progress.setValue(self.progress.value() + steps)

    def finish_progress(self) -> None:
        """Give the progress bar back (and hide it)."""
        self._held = False
        self.progress.hide()

    def release_progress(self) -> None:
        """Give the progress bar back without hiding it (a cancelled hold: the next one resets it)."""
        self._held = False

    def show_save_progress(self, done: int, total: int) -> None:
        """A long save's progress, unless the progress bar is held."""
        if total < SAVE_PROGRESS_FROM or self._held:
            return  # quick saves need no progress bar; the image check owns it while running
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.show()
        self.save_label.setText(f"Saving {done:,} / {total:,}…")

    def hide_save_progress(self) -> None:
        """A save ended: its progress goes, unless the bar is held."""
        if not self._held:
            self.progress.hide()
