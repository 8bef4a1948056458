"""Logging to a rotating file, and a friendly dialog for unexpected exceptions.

A double-clicked app has no terminal: without a log file and a dialog, a bug is a window
that silently vanishes and a user with nothing to send us.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import traceback
from pathlib import Path
from types import TracebackType

from .paths import log_dir

LOG_NAME = "lora-studio.log"
log = logging.getLogger("lora_studio")
_log_file: Path | None = None


def setup_logging(level: int = logging.INFO) -> Path:
    """Send the app's log records to ``<log folder>/lora-studio.log`` (5 x 1 MB); returns its path."""
    global _log_file
    path = log_dir() / LOG_NAME
    root = logging.getLogger()
    # Idempotent: main() may run more than once in a process (tests); a new folder replaces the old handler.
    for handler in [h for h in root.handlers if getattr(h, "_lora_studio", False)]:
        if Path(handler.baseFilename) == path:  # type: ignore[attr-defined]
            break
        root.removeHandler(handler)
        handler.close()
    else:
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=1_000_000, backupCount=5, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._lora_studio = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > level:  # never quieten a caller's (e.g. pytest's) level
        root.setLevel(level)
    _log_file = path
    return path


def log_file() -> Path | None:
    """The log file set up by ``setup_logging`` (None before)."""
    return _log_file


def crash_message(exc: BaseException, path: Path | None) -> str:
    """The text the crash dialog shows: what happened, where the details are."""
    where = f"The details are in the log file:\n{path}" if path else "No log file could be written."
    return (f"LoRA Studio ran into an unexpected problem:\n\n{type(exc).__name__}: {exc}\n\n"
            f"Your caption edits are saved as you type. {where}\n\n"
            "Please send this file with a bug report.")


def _excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    log.error("Unexpected exception\n%s", "".join(traceback.format_exception(exc_type, exc, tb)))
    sys.__excepthook__(exc_type, exc, tb)  # still on stderr for people who started us from a terminal
    try:
        from PySide6.QtCore import Qt
        from PySide6.QtWidgets import QApplication, QMessageBox
        # Offscreen (tests, --self-test in CI) nobody could press OK: a modal dialog would hang.
        if QApplication.instance() is not None and QApplication.platformName() != "offscreen":
            box = QMessageBox(QMessageBox.Icon.Critical, "LoRA Studio: unexpected problem", crash_message(exc, _log_file))
            box.setObjectName("CrashDialog")
            # Selectable, so the user can copy the log path into a bug report or a file manager.
            box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            box.exec()
    except Exception:  # noqa: BLE001 - the hook must never raise: that would hide the first error
        log.exception("could not show the crash dialog")


def install_excepthook() -> None:
    """Log unexpected exceptions and tell the user, instead of a silent exit.

    PySide6 calls ``sys.excepthook`` for exceptions raised in slots and virtual overrides,
    so this covers the event loop as well as start-up.
    """
    sys.excepthook = _excepthook
