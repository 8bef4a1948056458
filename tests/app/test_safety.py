"""Never lose an edit: journal replay after SIGKILL, outside changes, conflicts."""

from __future__ import annotations

import sys

import pytest

from app_helpers import edit_then_kill, open_folder, screenshot
from lora_studio.editing.conflicts import Choice
from lora_studio.editing.journal import journal_path
from lora_studio.storage.dataset import open_dataset


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
@pytest.mark.parametrize("fmt", ["csv", "txt"])
def test_killed_app_loses_nothing_journal_is_replayed(qtbot, dataset_factory, app_home, fmt):
    folder = dataset_factory(fmt)
    edit_then_kill("journal_child.py", folder, app_home)
    assert open_dataset(folder).captions[2] == ""  # never saved: the kill came first
    assert journal_path(folder).exists()

    from lora_studio.widgets.main_window import MainWindow
    win = MainWindow(autosave_ms=200, poll_ms=0)
    qtbot.addWidget(win)
    open_folder(qtbot, win, folder)
    assert win.session.captions[2] == "typed before the kill"
    assert open_dataset(folder).captions[2] == "typed before the kill"  # saved by the replay
    assert not journal_path(folder).exists()
    assert "recovered 1 unsaved edit" in win.statusBar().currentMessage()
    win.session.undo_stack.undo()  # the recovery itself is undoable
    assert win.session.captions[2] == ""
    win.close()


def test_outside_change_reloads_when_clean(qtbot, window, dataset_factory):
    folder = dataset_factory("csv")
    open_folder(qtbot, window, folder)
    text = (folder / "metadata.csv").read_text()
    (folder / "metadata.csv").write_text(text.replace("sketch, dog", "sketch, dog, edited elsewhere"))
    window.session.check_disk()
    qtbot.waitUntil(lambda: window.session.captions[5] == "sketch, dog, edited elsewhere", timeout=20_000)
    assert not window.session.is_dirty()
    assert window.session.pending_conflicts == []


def test_outside_change_to_other_image_keeps_my_edit(qtbot, window, dataset_factory):
    folder = dataset_factory("txt")
    open_folder(qtbot, window, folder)
    window.session.autosave_timer.setInterval(3_600_000)
    window.session.set_captions({"img_000.png": "mine"}, "edit")
    (folder / "img_001.txt").write_text("theirs")
    window.datasets.reload()  # F5; the folder is re-read in a worker
    qtbot.waitUntil(lambda: window.session.captions[1] == "theirs", timeout=20_000)
    assert window.session.captions[0] == "mine"
    assert window.session.pending_conflicts == []
    window.save()
    qtbot.waitUntil(lambda: not window.session.is_dirty(), timeout=20_000)
    assert open_dataset(folder).captions[:2] == ["mine", "theirs"]


def test_new_image_added_elsewhere_appears(qtbot, window, dataset_factory):
    from app_helpers import make_images
    folder = dataset_factory("txt")
    open_folder(qtbot, window, folder)
    make_images(folder, 1, start=50)
    window.session.check_disk()
    qtbot.waitUntil(lambda: window.model.rowCount() == 7, timeout=20_000)


def make_conflict(qtbot, window, folder):
    window.session.autosave_timer.setInterval(3_600_000)
    window.session.set_captions({"img_000.png": "fox, mine", "img_001.png": "cat, mine"}, "edit")
    text = (folder / "metadata.csv").read_text()
    text = text.replace("a painting of a red fox, forest", "fox, theirs").replace("a photo of a cat, indoors", "cat, theirs")
    (folder / "metadata.csv").write_text(text)
    window.session.check_disk()
    qtbot.waitUntil(lambda: window.datasets.conflict_dialog is not None, timeout=20_000)
    # while the conflict is open nothing is written over their file
    assert window.session.save(blocking=True) is False
    assert "fox, theirs" in (folder / "metadata.csv").read_text()
    return window.datasets.conflict_dialog


@pytest.mark.parametrize("choice", ["keep_all", "take_all", "per_image"])
def test_conflict_dialog_choices(qtbot, window, dataset_factory, choice):
    folder = dataset_factory("csv")
    open_folder(qtbot, window, folder)
    dialog = make_conflict(qtbot, window, folder)
    if choice == "keep_all":
        screenshot(window, "conflict-main-window")
        screenshot(dialog, "conflict-dialog")
        dialog.keep_all.click()
        expected = ["fox, mine", "cat, mine"]
    elif choice == "take_all":
        dialog.take_all.click()
        expected = ["fox, theirs", "cat, theirs"]
    else:
        dialog.set_choice(0, Choice.THEIRS)
        dialog.set_choice(1, Choice.MERGE)
        dialog.apply.click()
        expected = ["fox, theirs", "cat, mine, theirs"]
    assert window.session.captions[:2] == expected
    qtbot.waitUntil(lambda: not window.session.is_dirty(), timeout=20_000)
    assert open_dataset(folder).captions[:2] == expected
    assert window.session.pending_conflicts == []


def test_live_window_notices_outside_edit_without_being_asked(qtbot, dataset_factory):
    """With the normal watcher and poll running, an outside edit shows up by itself."""
    from lora_studio.widgets.main_window import MainWindow
    folder = dataset_factory("jsonl")
    win = MainWindow(autosave_ms=200, poll_ms=2000)
    qtbot.addWidget(win)
    open_folder(qtbot, win, folder)
    text = (folder / "metadata.jsonl").read_text().replace("sketch, dog", "sketch, dog, from a VM")
    (folder / "metadata.jsonl").write_text(text)
    qtbot.waitUntil(lambda: win.session.captions[5] == "sketch, dog, from a VM", timeout=6000)
    win.close()
