"""The main window opens a dataset of each caption format and shows its captions."""

from __future__ import annotations

import pytest

from app_helpers import open_folder, screenshot


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "txt"])
def test_open_each_format_shows_captions(qtbot, window, dataset_factory, fmt):
    folder = dataset_factory(fmt)
    open_folder(qtbot, window, folder)
    session = window.session
    assert session.format == fmt
    assert session.captions[0] == "a painting of a red fox, forest"
    assert session.captions[2] == ""  # no caption yet
    assert window.model.rowCount() == 6
    assert window.status.format_label.text() == f"Format: {fmt}"
    qtbot.waitUntil(lambda: window.thumbnails.pending() == 0 and window.detail.viewer.has_image(), timeout=10_000)
    qtbot.wait(50)
    screenshot(window, f"smoke-{fmt}")
