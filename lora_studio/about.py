"""The About dialog's text: app, Python, Qt and PySide versions (what a bug report needs)."""

from __future__ import annotations

import platform
import sys

from . import APP_NAME, __version__


def versions() -> dict[str, str]:
    """Versions of the parts a bug report needs, by name."""
    import PySide6
    from PySide6 import QtCore
    return {
        APP_NAME: __version__,
        "Python": platform.python_version(),
        "Qt": QtCore.qVersion(),
        "PySide6": PySide6.__version__,
        "OS": platform.platform(terse=True),
        "Build": "installed bundle" if getattr(sys, "frozen", False) else "source",
    }


def about_html(log_path: str | None = None) -> str:
    """Rich text for ``QMessageBox.about``."""
    rows = "".join(f"<tr><td>{name}</td><td>&nbsp;{value}</td></tr>" for name, value in versions().items())
    log_line = f"<p><small>Log file: {log_path}</small></p>" if log_path else ""
    return (f"<b>{APP_NAME}</b> {__version__}<br>Caption datasets and train LoRA adapters on your own GPU "
            f"machines.<table style='margin-top:8px'>{rows}</table>{log_line}")
