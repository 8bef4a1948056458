"""Where an auto-caption job runs: the launcher seam, and this computer.

A launcher starts ``python -m trainer label <args>`` and returns a :class:`JobProcess`.
Everything else the app needs (progress, results, stopping) goes through the run folder
(``status.json``, ``captions.jsonl``, ``STOP``). This computer runs the job as a child
process of the app (:class:`LocalLauncher`: exact exit code and console output). The
targets of the Targets panel are in :mod:`.target_launcher`: it maps the paths to the
target's view of the shared storage, starts the command detached through the target's
shell, and reports ``finished`` when ``status.json`` reaches a final state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from PySide6.QtCore import QObject, QProcess, QTimer, Signal

from ..frozen import trainer_python

OUTPUT_LIMIT = 64_000  # characters of the job's console output kept for error messages


class JobProcess(QObject):
    """A started job. ``finished(exit_code, output)``: -1 when it crashed or was killed."""

    finished = Signal(int, str)
    detached = False  # True: it runs on its own, and closing the app leaves it running

    def terminate(self) -> None:
        """Ask the process to end now (SIGTERM: the trainer stops after the current batch)."""

    def kill(self) -> None:
        """End the process at once."""

    def is_running(self) -> bool:
        """Whether the process has not ended yet."""
        return False

    def release(self) -> None:
        """Stop following the job (the app is closing); a detached job runs on."""

    def observe(self, status: dict[str, Any] | None) -> None:
        """The job's status.json as the job just read it (a process that follows the run folder uses it)."""


class LabelLauncher(Protocol):
    """Starts label jobs on one target."""

    name: str

    def start(self, label_args: list[str], cwd: Path, parent: QObject) -> JobProcess:
        """Start ``python -m trainer label <label_args>``; never blocks."""


class LocalProcess(JobProcess):
    """The job as a QProcess of this app: asynchronous, so the UI thread never waits for it."""

    def __init__(self, program: str, args: list[str], cwd: Path, parent: QObject) -> None:
        super().__init__(parent)
        self.output = ""
        self._done = False
        self.process = QProcess(self)
        self.process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        self.process.setWorkingDirectory(str(cwd))
        self.process.readyReadStandardOutput.connect(self._read)
        self.process.finished.connect(self._finished)
        self.process.errorOccurred.connect(self._error)
        self.process.start(program, args)

    def _read(self) -> None:
        text = bytes(self.process.readAllStandardOutput().data()).decode("utf-8", "replace")
        self.output = (self.output + text)[-OUTPUT_LIMIT:]

    def _finished(self, code: int, status: QProcess.ExitStatus) -> None:
        if self._done:
            return
        self._done = True
        self._read()
        self.finished.emit(code if status == QProcess.ExitStatus.NormalExit else -1, self.output)

    def _error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and not self._done:
            self._done = True
            message = f"{self.process.program()} could not be started: {self.process.errorString()}"
            # Qt may report this from inside start(), before the caller has connected `finished`.
            QTimer.singleShot(0, self, lambda: self.finished.emit(-1, message))

    def terminate(self) -> None:
        """SIGTERM (the trainer treats it like the STOP file)."""
        if self.is_running():
            self.process.terminate()

    def kill(self) -> None:
        """SIGKILL, and wait briefly so no zombie or Qt warning is left behind."""
        if self.is_running():
            self.process.kill()
            self.process.waitForFinished(3000)

    def is_running(self) -> bool:
        """Whether the process is starting or running."""
        return self.process.state() != QProcess.ProcessState.NotRunning


class LocalLauncher:
    """This computer, with the interpreter that runs the app (the trainer is installed beside it)."""

    name = "This computer"
    target_name = ""  # not one of the Targets panel's targets

    def __init__(self, python: str = "") -> None:
        self.python = python or trainer_python()  # not sys.executable: in a bundle that is the app

    def start(self, label_args: list[str], cwd: Path, parent: QObject) -> JobProcess:
        """Start the trainer as a child process of the app."""
        return LocalProcess(self.python, ["-m", "trainer", "label", *label_args], cwd, parent)
