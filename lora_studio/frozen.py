"""Where a source checkout and a frozen (PyInstaller) bundle differ; Qt-free.

``lora_studio.targets`` imports this in worker threads and on machines without Qt, so it
must stay free of PySide6 (tests/targets/test_layering.py).
"""

from __future__ import annotations

import sys
from pathlib import Path


def is_frozen() -> bool:
    """True inside a PyInstaller bundle."""
    return bool(getattr(sys, "frozen", False))


def bundle_root() -> Path:
    """Where the app's files live: the PyInstaller bundle's folder, or the source checkout.

    A frozen one-folder bundle unpacks its data next to the executable (``sys._MEIPASS``);
    ``build_installer.py`` puts ``resources/`` there under the same name as in the checkout.
    """
    if is_frozen():
        meipass = getattr(sys, "_MEIPASS", None)
        return Path(meipass) if meipass else Path(sys.executable).resolve().parent
    return Path(__file__).resolve().parent.parent


def trainer_python() -> str:
    """The interpreter that runs the local trainer when the Local target names none.

    From a source install that is the app's own interpreter (the trainer is installed
    beside it). A frozen bundle's ``sys.executable`` is the app itself, which cannot run
    ``-m trainer``: use the Python on PATH instead (the user can set another in Targets).
    """
    if not is_frozen():
        return sys.executable
    import shutil
    for name in ("python3", "python"):
        found = shutil.which(name)
        if found:
            return found
    return "python3"
