"""Where an auto-caption job runs. Today: this computer. The seam for GPU VMs is here.

A launcher starts ``python -m trainer label <args>`` and returns a :class:`JobProcess`.
Everything else the app needs (progress, results, stopping) goes through the run folder
(``status.json``, ``captions.jsonl``, ``STOP``), which is why a remote launcher only has to
(1) map the dataset, model and run folder paths to the target's view of the shared storage
(``lora_studio.targets.pathmap``), (2) start the command detached through the target's shell
(``lora_studio.targets.launch``), and (3) report ``finished`` when ``status.json`` reaches a
final state (there is no local process to wait for).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from PySide6.QtCore import QObject, QProcess, QTimer, Signal

from ..frozen import trainer_python

OUTPUT_LIMIT = 64_000  # characters of the job's console output kept for error messages


class JobProcess(QObject):
    """A started job. ``finished(exit_code, output)``: -1 when it crashed or was killed."""

    finished = Signal(int, str)

    def terminate(self) -> None:
        """Ask the process to end now (SIGTERM: the trainer stops after the current batch)."""

    def kill(self) -> None:
        """End the process at once."""

    def is_running(self) -> bool:
        """Whether the process has not ended yet."""
        return False


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

    def __init__(self, python: str = "") -> None:
        self.python = python or trainer_python()  # not sys.executable: in a bundle that is the app

    def start(self, label_args: list[str], cwd: Path, parent: QObject) -> JobProcess:
        """Start the trainer as a child process of the app."""
        return LocalProcess(self.python, ["-m", "trainer", "label", *label_args], cwd, parent)


def available_launchers() -> list[LabelLauncher]:
    """The targets the dialog offers (GPU VMs join here once their launcher exists)."""
    return [LocalLauncher()]
