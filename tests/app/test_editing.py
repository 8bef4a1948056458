"""Editing captions: inline, in the detail pane, bulk with each scope, undo/redo, autosave."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QItemSelectionModel, Qt

from app_helpers import open_folder, screenshot
from lora_studio.models.caption_model import COL_CAPTION
from lora_studio.models.filter_proxy import Filter
from lora_studio.storage.dataset import open_dataset
from lora_studio.tags import BulkEdit, Operation


def disk_captions(folder: Path) -> list[str]:
    """Captions as a fresh read of the folder sees them (what the trainer would read)."""
    return open_dataset(folder).captions


def test_inline_edit_is_undoable_and_autosaved(qtbot, window, dataset_factory):
    folder = dataset_factory("csv")
    open_folder(qtbot, window, folder)
    index = window.model.index(2, COL_CAPTION)
    assert window.model.setData(index, "a new caption")
    assert window.undo_action.text() == "&Undo Edit caption of img_002.png"
    assert window.session.is_dirty()
    qtbot.waitUntil(lambda: not window.session.is_dirty(), timeout=20_000)  # autosave after 200 ms
    assert disk_captions(folder)[2] == "a new caption"
    window.undo_action.trigger()
    assert window.session.captions[2] == ""
    window.redo_action.trigger()
    assert window.session.captions[2] == "a new caption"


def test_undo_and_redo_stay_in_the_edit_menu_after_a_dataset_opens(qtbot, window, dataset_factory):
    open_folder(qtbot, window, dataset_factory("csv"))
    menus = {action.text().replace("&", ""): action.menu() for action in window.menuBar().actions()}
    holding = {name for name, menu in menus.items()
               if {window.undo_action, window.redo_action} & set(menu.actions())}
    assert holding == {"Edit"}
    edit = menus["Edit"].actions()
    assert edit.index(window.undo_action) == 0 and edit.index(window.redo_action) == 1
    screenshot(window, "edit-menu-after-open")


def test_typing_in_detail_pane_merges_into_one_undo_step(qtbot, window, dataset_factory):
    folder = dataset_factory("txt")
    open_folder(qtbot, window, folder)
    window.grid.select_source_row(1)
    editor = window.detail.editor
    editor.setFocus()
    editor.moveCursor(editor.textCursor().MoveOperation.End)
    qtbot.keyClicks(editor, ", cute")
    window.detail.commit()
    qtbot.keyClicks(editor, ", fluffy")
    window.detail.commit()
    assert window.session.captions[1] == "a photo of a cat, indoors, cute, fluffy"
    assert window.session.undo_stack.count() == 1
    window.session.undo_stack.undo()
    assert window.session.captions[1] == "a photo of a cat, indoors"
    assert editor.toPlainText() == "a photo of a cat, indoors"


def select_rows(window, rows):
    sel = window.grid.selection_model()
    sel.clearSelection()
    for row in rows:
        index = window.grid.proxy.mapFromSource(window.model.index(row, 0))
        sel.select(index, QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows)


@pytest.mark.parametrize("scope,expected_rows", [("all", {0, 1, 2, 3, 4, 5}), ("filtered", {0, 4}), ("selected", {1, 3})])
def test_bulk_add_tag_respects_scope(qtbot, window, dataset_factory, scope, expected_rows):
    folder = dataset_factory("jsonl")
    open_folder(qtbot, window, folder)
    select_rows(window, [1, 3])
    if scope == "filtered":
        window.grid.proxy.set_filter(Filter(text="a painting of"))
    before = list(window.session.captions)
    changed = window.run_bulk(BulkEdit(Operation.ADD_TAG, "sks style"), scope)
    assert changed == len(expected_rows)
    for row, caption in enumerate(window.session.captions):
        assert caption.endswith("sks style") == (row in expected_rows)
    assert window.undo_action.text().startswith("&Undo Add tag “sks style”")
    window.undo_action.trigger()
    assert window.session.captions == before


def test_bulk_operations_and_undo_memory(qtbot, window, dataset_factory):
    folder = dataset_factory("csv")
    open_folder(qtbot, window, folder)
    s = window.session
    window.run_bulk(BulkEdit(Operation.PREPEND_TRIGGER, "sks"), "all")
    assert all(c.startswith("sks") for c in s.captions)
    window.run_bulk(BulkEdit(Operation.REPLACE, "painting", "oil painting", whole_tag=False), "all")
    assert s.captions[0] == "sks, a oil painting of a red fox, forest"
    # whole-tag replace only touches a tag that is exactly the text
    n = window.run_bulk(BulkEdit(Operation.REPLACE, "oil oil painting", "x", whole_tag=True), "all")
    assert n == 1 and s.captions[3] == "sks, x, portrait, woman"
    assert window.run_bulk(BulkEdit(Operation.REPLACE, "oil", "x", whole_tag=True), "all") == 0
    window.run_bulk(BulkEdit(Operation.REPLACE, r"a (\w+) (\w+) of", r"\2 \1", regex=True), "all")
    assert s.captions[0] == "sks, painting oil a red fox, forest"
    window.run_bulk(BulkEdit(Operation.REMOVE_TAG, "forest"), "all")
    assert s.captions[0] == "sks, painting oil a red fox"
    window.run_bulk(BulkEdit(Operation.SORT_TAGS), "all")
    assert s.captions[0] == "painting oil a red fox, sks"
    select_rows(window, [5])
    window.run_bulk(BulkEdit(Operation.CLEAR), "selected")
    assert s.captions[5] == ""
    # each command remembers only what it changed
    last = s.undo_stack.command(s.undo_stack.count() - 1)
    assert list(last.changes) == ["img_005.png"]
    for _ in range(s.undo_stack.count()):
        s.undo_stack.undo()
    assert s.captions == disk_captions(folder)


def test_bulk_dialog_previews_count_and_applies(qtbot, window, dataset_factory):
    folder = dataset_factory("csv")
    open_folder(qtbot, window, folder)
    dialog = window.bulk.open_bulk_dialog(Operation.REPLACE)
    dialog.scope_buttons["all"].setChecked(True)
    dialog.text.setText("painting")
    dialog.replacement.setText("oil painting")
    dialog.update_preview()
    assert dialog.preview_label.text() == "Will change 3 captions."
    assert "→ a oil painting of a red fox, forest" in dialog.examples.text()
    dialog.regex.setChecked(True)
    dialog.text.setText("(")
    dialog.update_preview()
    assert "not valid" in dialog.preview_label.text()
    dialog.text.setText("painting")
    dialog.regex.setChecked(False)
    dialog.update_preview()
    from app_helpers import screenshot
    screenshot(dialog, "bulk-dialog")
    dialog.accept()
    assert window.session.captions[0] == "a oil painting of a red fox, forest"


def test_filters(qtbot, window, dataset_factory):
    folder = dataset_factory("csv")
    open_folder(qtbot, window, folder)
    proxy = window.grid.proxy
    proxy.set_filter(Filter(missing_caption=True))
    assert window.grid.filtered_rows() == [2]
    proxy.set_filter(Filter(tag="dog"))
    assert window.grid.filtered_rows() == [5]
    proxy.set_filter(Filter(text=r"paint\w+ of", regex=True))
    assert window.grid.filtered_rows() == [0, 4]
    proxy.set_filter(Filter(text="(", regex=True))
    assert window.grid.filtered_rows() == [] and proxy.filter_error
    proxy.set_filter(Filter(text="IMG_003"))
    assert window.grid.filtered_rows() == [3]
    # clicking a tag in the tag panel filters by it
    tags = window.tags
    row = next(r for r in range(tags.model.rowCount()) if tags.model.tag_at(r) == "snow")
    tags.view.clicked.emit(tags.proxy.mapFromSource(tags.model.index(row, 0)))
    assert window.grid.filtered_rows() == [4]


def test_model_testers(qtbot, qtmodeltester, window, dataset_factory, tmp_path):
    folder = dataset_factory("csv")
    window.open_workspace(folder.parent)
    qtbot.waitUntil(lambda: window.session is not None, timeout=10_000)
    qtbot.waitUntil(lambda: window.tree.tree_model.rowCount() > 0, timeout=10_000)
    qtmodeltester.check(window.model)
    qtmodeltester.check(window.grid.proxy)
    qtmodeltester.check(window.tags.model)
    qtmodeltester.check(window.tree.tree_model)
    window.run_bulk(BulkEdit(Operation.ADD_TAG, "x"), "all")
    qtmodeltester.check(window.model)
    window.grid.proxy.set_filter(Filter(text="painting"))
    qtmodeltester.check(window.grid.proxy)
    qtmodeltester.check(window.tags.proxy)


def test_inline_edit_with_the_keyboard_in_both_views(qtbot, window, dataset_factory):
    from PySide6.QtWidgets import QLineEdit
    folder = dataset_factory("csv")
    open_folder(qtbot, window, folder)
    for mode, row, text in ((1, 2, "typed in the table"), (0, 5, "typed on the card")):
        window.set_grid_mode(mode)
        window.grid.select_source_row(row)
        view = window.grid.active_view()
        view.setFocus()
        window.actions.edit_caption.trigger()  # F2
        editors = view.findChildren(QLineEdit)
        assert len(editors) == 1
        editor = editors[0]
        qtbot.wait(20)
        editor.selectAll()
        qtbot.keyClicks(editor, text)
        qtbot.wait(20)  # let the view finish opening the editor, as it does before a person types
        qtbot.keyClick(editor, Qt.Key.Key_Return)  # Qt commits on the next event-loop turn
        qtbot.waitUntil(lambda: window.session.captions[row] == text, timeout=20_000)
    assert window.undo_action.text() == "&Undo Edit caption of img_005.png"


def test_inline_typing_is_committed_before_enter(qtbot, window, dataset_factory):
    """A crash in the middle of an inline edit loses under a second of typing."""
    from PySide6.QtWidgets import QLineEdit
    folder = dataset_factory("csv")
    open_folder(qtbot, window, folder)
    window.set_grid_mode(1)
    window.grid.select_source_row(2)
    window.grid.edit_current()
    editor = window.grid.table_view.findChildren(QLineEdit)[0]
    qtbot.wait(20)
    qtbot.keyClicks(editor, "half typed")
    qtbot.waitUntil(lambda: window.session.captions[2] == "half typed", timeout=20_000)  # no Enter yet
    qtbot.keyClicks(editor, " and more")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.session.captions[2] == "half typed and more", timeout=20_000)
    assert window.session.undo_stack.count() == 1  # one edit, one undo step


def test_tag_panel_rename_and_remove(qtbot, window, dataset_factory):
    folder = dataset_factory("csv")
    open_folder(qtbot, window, folder)
    window.tags.renameRequested.emit("forest", "woods")
    assert window.session.captions[0] == "a painting of a red fox, woods"
    assert window.undo_action.text().startswith("&Undo Replace “forest” with “woods”")
    window.tags.removeRequested.emit("woods")
    assert window.session.captions[0] == "a painting of a red fox"
