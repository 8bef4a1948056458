"""The outputs of a ``label`` job: console and log lines, and the run directory's files.

Torch-free. With a run directory the job keeps its contract (DESIGN.md section 3):
``status.json`` through :class:`trainer.rundir.RunWriter` (heartbeat included), ``events.jsonl``,
``train.log``, and ``captions.jsonl`` (one flushed line per image, for the app's preview).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any, TextIO

from trainer import __version__
from trainer.rundir import RunWriter

RESULTS_FILE = "captions.jsonl"
log = logging.getLogger("trainer.label")


class JobReporter:
    """The job's outputs: console/log lines, status.json, events, captions.jsonl."""

    def __init__(self, run_dir: Path | None) -> None:
        self.run: RunWriter | None = None
        self.results_file: TextIO | None = None
        self.handlers: list[logging.Handler] = []
        console = logging.StreamHandler(sys.stdout)
        console.setFormatter(logging.Formatter("%(message)s"))
        self.handlers.append(console)
        if run_dir is not None:
            root = Path(run_dir)
            root.mkdir(parents=True, exist_ok=True)
            stop = root / "STOP"
            if stop.exists():
                stop.unlink()  # it asked an earlier job in this folder to stop, and it did
            self.run = RunWriter(root, __version__)
            self.run.start_heartbeat()  # model loading can take a while: show we are alive
            handler = logging.FileHandler(self.run.paths.log, encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            self.handlers.append(handler)
            # One job per run folder: the preview lists this job's results only.
            self.results_file = open(root / RESULTS_FILE, "w", encoding="utf-8")
        log.handlers[:] = self.handlers
        log.setLevel(logging.INFO)
        log.propagate = False

    def status(self, **fields: Any) -> None:
        """Update ``status.json`` (no-op without a run directory)."""
        if self.run is not None:
            self.run.update(**fields)

    def event(self, kind: str, **fields: Any) -> None:
        """Append an event to ``events.jsonl``."""
        if self.run is not None:
            self.run.log_event(kind, **fields)

    def result_line(self, record: dict[str, Any]) -> None:
        """Append one image's result to ``captions.jsonl``."""
        if self.results_file is not None:
            self.results_file.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.results_file.flush()  # the app previews captions as they come

    def stop_requested(self) -> bool:
        """True when the run directory has a ``STOP`` file."""
        return self.run is not None and self.run.stop_requested()

    def fail(self, message: str, hint: str, echo: bool = True) -> None:
        """Record a failure: an error event and ``state: failed`` with the message and hint."""
        if echo:
            log.error("error: %s (%s)", message, hint)
        self.event("error", message=message, hint=hint)
        if self.run is not None:
            self.run.set_state("failed", error={"message": message, "hint": hint})

    def close(self) -> None:
        """Write the final status and close every file."""
        if self.results_file is not None:
            self.results_file.close()
        if self.run is not None:
            self.run.close()
        for handler in self.handlers:
            handler.close()
        log.handlers[:] = []
