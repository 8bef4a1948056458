"""Fixtures for the desktop app's tests: offscreen Qt, warnings fail, isolated app home."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import lora_studio  # noqa: F401 - installs the PySide refcount guard before any Qt call
from app_helpers import new_main_window, write_dataset

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# Messages the offscreen platform prints for every window; they say nothing about the app.
HARMLESS = [r"This plugin does not support propagateSizeHints\(\)", r"This plugin does not support raise\(\)",
            r"QFont::setPointSize", r"propagateSizeHints"]


def pytest_collection_modifyitems(config, items):
    """Every app test fails on a Qt warning (pytest-qt's qt_log_level_fail), except known noise."""
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.qt_log_level_fail("WARNING"))
            item.add_marker(pytest.mark.qt_log_ignore(*HARMLESS))


@pytest.fixture(autouse=True)
def app_home(tmp_path, monkeypatch) -> Path:
    """Settings, journals and the thumbnail cache go to a per-test folder."""
    home = tmp_path / "app-home"
    monkeypatch.setenv("LORA_STUDIO_HOME", str(home))
    return home


@pytest.fixture
def dataset_factory(tmp_path):
    """``make(fmt, count=6, name='ds')`` -> folder with a dataset in that format."""
    def make(fmt: str, count: int = 6, name: str = "ds") -> Path:
        folder = tmp_path / "workspace" / name
        write_dataset(folder, fmt, count)
        return folder
    return make


@pytest.fixture
def window(qtbot):
    """A main window with fast autosave and no background polling (tests poll explicitly)."""
    win = new_main_window(qtbot)
    yield win
    win.close()
    # A test must not leave worker threads running into the next one.
    assert win.runner.pool.waitForDone(10_000)
    assert win.thumbnails.pool.waitForDone(10_000)


@pytest.fixture(scope="session")
def tagger(tmp_path_factory) -> Path:
    """The tiny WD14 tagger of trainer/labeling/tiny.py, built once, by another process.

    Another process, so that the app's tests can check the app itself loads no torch.
    """
    folder = tmp_path_factory.mktemp("models") / "tiny-wd14"
    code = "import sys; from trainer.labeling.tiny import make_tiny_tagger; make_tiny_tagger(sys.argv[1])"
    result = subprocess.run([sys.executable, "-c", code, str(folder)], cwd=Path(__file__).resolve().parents[2],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    return folder


@pytest.fixture
def monitor_page(qtbot, tmp_path):
    """The Runs page on its own (no workspace yet); ``context_value`` is its targets' context."""
    from lora_studio.monitor.monitor_page import MonitorPage
    from lora_studio.targets.api import TargetContext
    from lora_studio.targets.model import TargetSettings
    from lora_studio.workers.tasks import TaskRunner
    from lora_studio.workers.thumbnails import ThumbnailLoader

    context = TargetContext(TargetSettings(), tmp_path / "known_hosts")
    runner = TaskRunner()
    thumbnails = ThumbnailLoader(tmp_path / "thumbs")
    widget = MonitorPage(runner, thumbnails, context=lambda: context, refresh_ms=200, runs_refresh_ms=500)
    qtbot.addWidget(widget)
    widget.resize(1400, 860)
    widget.show()
    widget.context_value = context
    yield widget
    widget.set_workspace(None)
    assert runner.pool.waitForDone(30_000)
    thumbnails.stop()
