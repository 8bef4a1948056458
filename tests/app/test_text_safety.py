"""Nothing typed into a text dataset is lost: an app killed after an edit leaves it in the journal, and
the next opening replays it and saves it with every other byte of the file as it was."""

from __future__ import annotations

import sys

import pytest

from app_helpers import edit_then_kill, new_main_window
from lora_studio.editing.journal import journal_path
from lora_studio.models.example_model import COL_ASSISTANT
from test_text_dataset import ROWS, open_text, wait_saved, write_jsonl


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_killed_app_loses_no_text_edit_and_the_replay_keeps_every_other_byte(qtbot, app_home, tmp_path):
    path = write_jsonl(tmp_path / "chats.jsonl", ROWS["sharegpt"] + ROWS["sharegpt"][:1])
    # Another tool's style (no spaces, escaped accents, CRLF) on one line: the save must keep it.
    lines = path.read_bytes().split(b"\n")
    lines[2] = b'{"conversations":[{"from":"human","value":"Caf\\u00e9?"},{"from":"gpt","value":"Oui."}]}\r'
    path.write_bytes(b"\n".join(lines))
    before = path.read_bytes()

    edit_then_kill("text_journal_child.py", path, app_home)
    assert path.read_bytes() == before  # never saved: the kill came first
    assert journal_path(path).exists()

    window = new_main_window(qtbot)
    open_text(qtbot, window, path)
    assert window.text_page.model.index(0, COL_ASSISTANT).data() == "A round shape. Typed before the kill."
    assert "recovered 1 unsaved edit" in window.statusBar().currentMessage()
    wait_saved(qtbot, window)
    # The replay saved the edit: only that string changed, the unknown keys ("id", "source"), the
    # other rows and their formatting are the bytes they were.
    assert path.read_bytes() == before.replace(b"A round shape.", b"A round shape. Typed before the kill.")
    assert not journal_path(path).exists()
    window.undo_action.trigger()  # the recovery itself is undoable
    wait_saved(qtbot, window)
    assert path.read_bytes() == before
    window.close()
    assert window.runner.pool.waitForDone(10_000)
