"""Text datasets (LLM training examples) in the dataset tab: open, table, filter, edit, save, undo, conflicts,
problems, and the example rendered through the chat template with its trained text highlighted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor

from app_helpers import screenshot
from lora_studio.editing.conflicts import Choice
from lora_studio.models.example_model import (COL_ASSISTANT, COL_FORMAT, COL_SYSTEM, COL_TOKENS, COL_TURNS,
                                              COL_USER, COL_WHERE, ExampleModel)
from lora_studio.storage.text_dataset import open_text_dataset

ROOT = Path(__file__).resolve().parents[2]
ROWS = {
    "alpaca": [{"instruction": "Name the shape with three sides.", "input": "", "output": "A triangle.", "id": 1},
               {"instruction": "What colour is the sky?", "input": "On a clear day", "output": "Blue.",
                "system": "Answer in one word."}],
    "sharegpt": [{"conversations": [{"from": "human", "value": "What is a circle?"},
                                    {"from": "gpt", "value": "A round shape."}], "id": "c1", "source": "demo"},
                 {"system": "Be brief.", "conversations": [{"from": "human", "value": "And a square?"},
                                                           {"from": "gpt", "value": "Four equal sides."},
                                                           {"from": "human", "value": "Corners?"},
                                                           {"from": "gpt", "value": "Four."}]}],
    "openai": [{"messages": [{"role": "system", "content": "You know shapes."},
                             {"role": "user", "content": "Name a shape."},
                             {"role": "assistant", "content": "A hexagon."}]},
               {"messages": [{"role": "user", "content": "How many sides has a pentagon?"},
                             {"role": "assistant", "content": "Five."}], "meta": {"lang": "en"}}],
    "text": [{"text": "Circles are round."}, {"text": "Squares have four corners."}],
}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def open_text(qtbot, window, path: Path) -> None:
    with qtbot.waitSignal(window.text.datasetOpened, timeout=10_000):
        window.open_dataset_folder(path)


def cells(window, row: int) -> list:
    model = window.text_page.model
    return [model.index(row, column).data() for column in range(model.columnCount())]


def field_editor(window, label: str):
    return next(editor for editor in window.text_page.editor.editors if editor.field.label == label)


def type_into(qtbot, window, label: str, text: str) -> None:
    """Type at the end of a field, as a person does, and let the editor hand it to the session."""
    editor = field_editor(window, label)
    editor.setFocus()
    editor.moveCursor(QTextCursor.MoveOperation.End)
    qtbot.keyClicks(editor, text)
    window.text_page.editor.commit()


def wait_saved(qtbot, window) -> None:
    qtbot.waitUntil(lambda: window.text.session is not None and not window.text.session.is_dirty()
                    and not window.text.session._saving, timeout=10_000)


@pytest.mark.parametrize("fmt", list(ROWS))
def test_a_jsonl_of_each_format_opens_as_a_table_of_examples(qtbot, window, tmp_path, fmt):
    path = write_jsonl(tmp_path / f"{fmt}.jsonl", ROWS[fmt])
    open_text(qtbot, window, path)
    assert window.pages.currentWidget() is window.text_page
    assert window.session is None  # no image dataset: the caption grid's panes stay out of it
    model = window.text_page.model
    assert model.rowCount() == 2
    assert [model.headerData(c, Qt.Orientation.Horizontal) for c in range(COL_TOKENS)] == [
        "File:line", "Format", "System", "User (first)", "Assistant (first)", "Turns"]
    first, second = cells(window, 0), cells(window, 1)
    assert first[COL_WHERE] == f"{fmt}.jsonl:1" and second[COL_WHERE] == f"{fmt}.jsonl:2"
    assert first[COL_FORMAT] == fmt
    expected = {
        "alpaca": (["", "Name the shape with three sides.", "A triangle.", 2],
                   ["Answer in one word.", "What colour is the sky? ⏎ On a clear day", "Blue.", 2]),
        "sharegpt": (["", "What is a circle?", "A round shape.", 2], ["Be brief.", "And a square?", "Four equal sides.", 4]),
        "openai": (["You know shapes.", "Name a shape.", "A hexagon.", 2], ["", "How many sides has a pentagon?", "Five.", 2]),
        "text": (["", "Circles are round.", "", 0], ["", "Squares have four corners.", "", 0]),
    }[fmt]
    for row, want in zip((first, second), expected):
        assert [row[COL_SYSTEM], row[COL_USER], row[COL_ASSISTANT], row[COL_TURNS]] == want
    assert window.status.format_label.text() == f"Format: {fmt}"
    assert window.workbench.tabText(0) == "Examples"
    assert window.text_page.filter_bar.count.text() == "2 examples"
    assert not window.docks["details"].isVisible()  # the image detail pane has nothing to show here


def test_a_folder_of_jsonl_files_without_images_is_a_text_dataset(qtbot, window, tmp_path):
    folder = tmp_path / "chats"
    write_jsonl(folder / "a.jsonl", ROWS["sharegpt"])
    write_jsonl(folder / "b.jsonl", ROWS["openai"])
    (folder / "c.json").write_text(json.dumps(ROWS["alpaca"], indent=2), encoding="utf-8")
    open_text(qtbot, window, folder)
    wheres = [cells(window, row)[COL_WHERE] for row in range(window.text_page.model.rowCount())]
    assert wheres == ["a.jsonl:1", "a.jsonl:2", "b.jsonl:1", "b.jsonl:2", "c.json:2", "c.json:8"]
    assert window.status.format_label.text() == "Format: sharegpt + openai + alpaca"


def test_the_example_model_passes_the_model_tester(qtbot, qtmodeltester, tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [*ROWS["sharegpt"], {"conversations": "not a list"}])
    path.write_text(path.read_text(encoding="utf-8") + "{not json\n", encoding="utf-8")
    from lora_studio.editing.text_session import TextDatasetSession

    session = TextDatasetSession(open_text_dataset(path), poll_ms=0, autosave_ms=0)
    model = ExampleModel()
    model.set_session(session)
    qtmodeltester.check(model)
    assert model.rowCount() == 4
    model.set_session(None)
    session.journal.close()


def test_filter_by_text_and_by_problem(qtbot, window, tmp_path):
    rows = ROWS["sharegpt"] + [{"conversations": [{"from": "gpt", "value": "Out of order."}]}]
    open_text(qtbot, window, write_jsonl(tmp_path / "chats.jsonl", rows))
    bar, proxy = window.text_page.filter_bar, window.text_page.table.proxy
    qtbot.keyClicks(bar.search, "square")
    qtbot.waitUntil(lambda: proxy.rowCount() == 1)
    assert bar.count.text() == "1 of 3 examples"
    assert proxy.index(0, COL_USER).data() == "And a square?"
    bar.search.clear()
    bar.problems.setChecked(True)
    qtbot.waitUntil(lambda: proxy.rowCount() == 1)
    assert proxy.index(0, COL_WHERE).data() == "chats.jsonl:3"


def test_an_edit_is_saved_atomically_with_the_other_lines_byte_identical(qtbot, window, tmp_path):
    path = write_jsonl(tmp_path / "chats.jsonl", ROWS["sharegpt"] + ROWS["sharegpt"][:1])
    # Another writer's style on one line (no spaces, escaped accents) and a CRLF line: both must survive.
    lines = path.read_bytes().split(b"\n")
    lines[2] = b'{"conversations":[{"from":"human","value":"Caf\\u00e9?"},{"from":"gpt","value":"Oui."}]}\r'
    path.write_bytes(b"\n".join(lines))
    before = path.read_bytes().split(b"\n")
    inode = os.stat(path).st_ino
    open_text(qtbot, window, path)
    window.text_page.table.select_source_row(0)
    type_into(qtbot, window, "Assistant 1", " With no corners.")
    assert window.text_page.model.index(0, COL_ASSISTANT).data() == "A round shape. With no corners."
    wait_saved(qtbot, window)
    after = path.read_bytes().split(b"\n")
    assert after[1:] == before[1:]  # every line not edited, byte for byte
    assert json.loads(after[0]) == {"conversations": [{"from": "human", "value": "What is a circle?"},
                                                      {"from": "gpt", "value": "A round shape. With no corners."}],
                                    "id": "c1", "source": "demo"}
    assert list(json.loads(after[0])) == ["conversations", "id", "source"]  # unknown keys kept, in their order
    assert after[0] == before[0].replace(b"A round shape.", b"A round shape. With no corners.")
    assert os.stat(path).st_ino != inode  # replaced by a rename: never seen half-written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app-home", "chats.jsonl"]  # no temporary file left
    # The style of a row written by another tool is kept when that row is edited.
    window.text_page.table.select_source_row(2)
    type_into(qtbot, window, "Assistant 1", " Bien.")
    wait_saved(qtbot, window)
    edited = path.read_bytes().split(b"\n")[2]
    assert edited == b'{"conversations":[{"from":"human","value":"Caf\\u00e9?"},{"from":"gpt","value":"Oui. Bien."}]}\r'


def test_an_edit_in_a_json_array_rewrites_only_that_element(qtbot, window, tmp_path):
    path = tmp_path / "set.json"
    path.write_text(json.dumps(ROWS["alpaca"], indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    before = path.read_text(encoding="utf-8").splitlines()
    open_text(qtbot, window, path)
    window.text_page.table.select_source_row(1)
    type_into(qtbot, window, "Assistant 1 (output)", " Mostly.")
    wait_saved(qtbot, window)
    after = path.read_text(encoding="utf-8").splitlines()
    changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
    assert len(after) == len(before) and changed == [before.index('    "output": "Blue.",')]
    assert after[changed[0]] == '    "output": "Blue. Mostly.",'


def test_undo_is_named_after_the_edit_and_restores_the_file(qtbot, window, tmp_path):
    path = write_jsonl(tmp_path / "chats.jsonl", ROWS["openai"])
    original = path.read_bytes()
    open_text(qtbot, window, path)
    window.text_page.table.select_source_row(1)
    type_into(qtbot, window, "User 1", " Think.")
    assert window.undo_action.text() == "&Undo Edit User 1 of chats.jsonl:2"
    assert window.undo_action.isEnabled()
    wait_saved(qtbot, window)
    assert path.read_bytes() != original
    window.undo_action.trigger()
    assert field_editor(window, "User 1").toPlainText() == "How many sides has a pentagon?"
    wait_saved(qtbot, window)
    assert path.read_bytes() == original
    window.redo_action.trigger()
    assert window.text_page.model.index(1, COL_USER).data() == "How many sides has a pentagon? Think."


def test_find_and_replace_across_examples_is_one_undo_step(qtbot, window, tmp_path):
    path = write_jsonl(tmp_path / "chats.jsonl", ROWS["sharegpt"])
    open_text(qtbot, window, path)
    window.actions.find_replace.trigger()
    dialog = window.text.find_dialog
    assert dialog is not None and dialog.windowTitle() == "Find and replace in examples"
    dialog.text.setText("Four")
    dialog.replacement.setText("4")
    dialog.update_preview()
    assert dialog.preview_label.text() == "Will change 1 example."
    dialog.accept()
    assert window.undo_action.text() == "&Undo Replace “Four” with “4” in 1 example"
    assert cells(window, 1)[COL_ASSISTANT] == "4 equal sides."
    wait_saved(qtbot, window)
    row = json.loads(path.read_text(encoding="utf-8").splitlines()[1])
    assert [m["value"] for m in row["conversations"]] == ["And a square?", "4 equal sides.", "Corners?", "4."]
    window.undo_action.trigger()
    assert cells(window, 1)[COL_ASSISTANT] == "Four equal sides."


def test_a_file_changed_behind_the_app_is_a_conflict_not_overwritten(qtbot, window, tmp_path):
    rows = ROWS["sharegpt"] + ROWS["sharegpt"][:1]
    path = write_jsonl(tmp_path / "chats.jsonl", rows)
    open_text(qtbot, window, path)
    # Another desktop edits the first and the last example on the share.
    theirs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    theirs[0]["conversations"][1]["value"] = "A shape with no corners."
    theirs[2]["conversations"][0]["value"] = "What is a circle, really?"
    write_jsonl(path, theirs)
    window.text_page.table.select_source_row(0)
    type_into(qtbot, window, "Assistant 1", " Like a wheel.")
    qtbot.waitUntil(lambda: window.text.conflict_dialog is not None, timeout=10_000)
    on_disk = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert on_disk == theirs  # nothing was overwritten
    assert window.status.save_label.text() == "⚠ Conflicts: not saved"
    dialog = window.text.conflict_dialog
    assert dialog.table.item(0, 0).text() == "chats.jsonl#0"
    assert "Assistant 1: A round shape. Like a wheel." in dialog.table.item(0, 1).text()
    assert "Assistant 1: A shape with no corners." in dialog.table.item(0, 2).text()
    dialog.set_choice(0, Choice.MINE)
    dialog.accept()
    wait_saved(qtbot, window)
    final = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert final[0]["conversations"][1]["value"] == "A round shape. Like a wheel."  # mine, as chosen
    assert final[2]["conversations"][0]["value"] == "What is a circle, really?"  # their other edit, kept


def test_problems_are_listed_with_file_and_line_and_go_to_their_row(qtbot, window, tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", ROWS["openai"])
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"messages": [{"role": "user", "content": "Hi"}\n')  # bad JSON on line 3
        handle.write(json.dumps({"messages": [{"role": "assistant", "content": "First!"},
                                              {"role": "user", "content": "Hm"}]}) + "\n")
    open_text(qtbot, window, path)
    panel = window.problems
    texts = [panel.item(i).text() for i in range(panel.count())]
    assert texts[0].startswith("bad.jsonl:3: the line is not valid JSON")
    assert texts[1].startswith("bad.jsonl:4: roles out of order")
    assert window.docks["problems"].windowTitle() == "Problems (2)"
    item = panel.item(1)
    qtbot.mouseClick(panel.viewport(), Qt.MouseButton.LeftButton, pos=panel.visualItemRect(item).center())
    assert window.text_page.table.current_row() == 3
    assert window.text_page.editor.title.text().startswith("bad.jsonl:4")
    assert "roles out of order" in window.text_page.editor.problem.text()
    panel.itemClicked.emit(panel.item(0))
    assert window.text_page.table.current_row() == 2
    assert window.text_page.model.index(2, COL_WHERE).data(Qt.ItemDataRole.DecorationRole) is not None


def test_the_rendered_example_highlights_the_answers(qtbot, window, tmp_path):
    open_text(qtbot, window, write_jsonl(tmp_path / "chats.jsonl", ROWS["sharegpt"]))
    window.text_page.table.select_source_row(1)
    preview = window.text_page.preview
    assert preview.text.toPlainText() == ("### System:\nBe brief.\n\n### User:\nAnd a square?\n\n### Assistant:\n"
                                          "Four equal sides.</s>\n\n### User:\nCorners?\n\n### Assistant:\nFour.</s>")
    assert preview.trained_text() == ["Four equal sides.</s>", "Four.</s>"]
    assert "≈" in preview.count.text() and "an estimate" in preview.count.text()
    assert "built-in “default” template" in preview.note.text()
    # The rendering follows typing.
    type_into(qtbot, window, "Assistant 2", " Right angles.")
    qtbot.waitUntil(lambda: preview.trained_text()[-1] == "Four. Right angles.</s>")


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    """The tiny Llama of `make-tiny-model --family llama` (its own process: this one stays torch-free)."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    done = subprocess.run([sys.executable, "-m", "trainer", "make-tiny-model", str(folder), "--family", "llama"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    if done.returncode != 0 and "torch" in done.stderr:
        pytest.skip("making the tiny Llama needs torch")
    assert done.returncode == 0, done.stderr
    return folder / "llama"


def trainer_token_count(model: Path, path: Path, row: int) -> tuple[int, list[str]]:
    """What the trainer counts for a row, with transformers' tokenizer (in another process)."""
    code = ("import sys; from pathlib import Path\n"
            "from transformers import AutoTokenizer\n"
            "from trainer.llm.formats import read_dataset\n"
            "from trainer.llm.tokenize import template_for, tokenize_example\n"
            "tok = AutoTokenizer.from_pretrained(sys.argv[1], local_files_only=True)\n"
            "example = read_dataset(sys.argv[2]).examples[int(sys.argv[3])]\n"
            "row = tokenize_example(example, tok, template_for(tok))\n"
            "print(len(row.input_ids)); print(tok.decode([i for i in row.labels if i != -100]))\n")
    done = subprocess.run([sys.executable, "-c", code, str(model), str(path), str(row)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    count, trained = done.stdout.split("\n", 1)
    return int(count), trained


def test_tokens_are_counted_with_the_base_models_tokenizer_against_cutoff_len(qtbot, window, tmp_path, tiny_llama):
    path = write_jsonl(tmp_path / "chats.jsonl", ROWS["sharegpt"])
    open_text(qtbot, window, path)
    window.text_page.table.select_source_row(1)
    window.text.set_training_config({"base_model": str(tiny_llama), "cutoff_len": 40}, None)
    qtbot.waitUntil(lambda: window.text.training.tokenizer.exact and bool(window.text_page.model.tokens), timeout=10_000)
    expected, trained = trainer_token_count(tiny_llama, path, 1)
    preview = window.text_page.preview
    assert f"{expected:,} / 40 tokens" in preview.count.text() and "≈" not in preview.count.text()
    assert "are past cutoff_len and cut off" in preview.count.text()
    assert preview.heading.text() == "Rendered with the model's own chat template"
    assert "".join(preview.trained_text()).replace("\n", "") in trained.replace("\n", "")
    # The cut falls in the first answer: its start is trained, the rest and the second answer are not.
    first, = preview.trained_text()
    assert first and "Four equal sides.<|im_end|>\n".startswith(first) and first != "Four equal sides.<|im_end|>\n"
    assert not window.text_page.table.isColumnHidden(COL_TOKENS)
    assert window.text_page.model.index(1, COL_TOKENS).data() == expected
    screenshot(window, "text-dataset-tokens")


def test_the_demo_workspace_has_a_text_dataset_to_open_from_the_tree(qtbot, window, tmp_path):
    from trainer.demo_workspace import TEXT_DATASET, create_demo_workspace

    root = tmp_path / "demo"
    create_demo_workspace(root, make_model=False)
    with qtbot.waitSignal(window.datasetOpened, timeout=20_000):
        window.open_workspace(root)
    assert window.session is not None and window.session.root == root / "datasets" / "shapes"  # as before
    tree = window.tree
    index = tree.tree_model.find_path(str((root / TEXT_DATASET).parent))
    assert index.isValid() and index.siblingAtColumn(1).data() == "text"
    with qtbot.waitSignal(window.text.datasetOpened, timeout=10_000):
        qtbot.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=tree.visualRect(index).center())
    assert window.session is None and window.text_page.model.rowCount() == 20
    assert window.problems.item(0).text() == "No problems found"
    assert window.docks["problems"].windowTitle() == "Problems"
    # Back to the image dataset: its docks come back.
    shapes = tree.tree_model.find_path(str(root / "datasets" / "shapes"))
    with qtbot.waitSignal(window.datasetOpened, timeout=10_000):
        qtbot.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=tree.visualRect(shapes).center())
    assert window.pages.currentWidget() is window.grid_page and window.docks["details"].isVisible()
    assert window.workbench.tabText(0) == "Captions"


def test_a_system_prompt_can_be_added_and_is_saved_first(qtbot, window, tmp_path):
    path = write_jsonl(tmp_path / "chats.jsonl", ROWS["openai"])
    open_text(qtbot, window, path)
    window.text_page.table.select_source_row(1)
    editor = window.text_page.editor
    assert editor.add_system.isVisible()
    qtbot.mouseClick(editor.add_system, Qt.MouseButton.LeftButton)
    assert [e.field.label for e in editor.editors] == ["System", "User 1", "Assistant 1"]
    assert window.undo_action.text() == "&Undo Add a system prompt to chats.jsonl:2"
    type_into(qtbot, window, "System", "Count carefully.")
    wait_saved(qtbot, window)
    row = json.loads(path.read_text(encoding="utf-8").splitlines()[1])
    assert row["messages"][0] == {"role": "system", "content": "Count carefully."}
    assert list(row) == ["messages", "meta"]
    assert not editor.add_system.isVisible()


def test_a_folder_of_images_with_metadata_jsonl_stays_an_image_dataset(qtbot, window, dataset_factory):
    folder = dataset_factory("jsonl")
    with qtbot.waitSignal(window.datasetOpened, timeout=10_000):
        window.open_dataset_folder(folder)
    assert window.session is not None and window.text.session is None
    assert window.pages.currentWidget() is window.grid_page


def test_a_tokenizer_without_a_chat_template_renders_with_the_builtin_default(qtbot, window, tmp_path, tiny_llama):
    import shutil

    plain = tmp_path / "plain-llama"
    shutil.copytree(tiny_llama, plain, ignore=shutil.ignore_patterns("*.safetensors", "chat_template.jinja"))
    open_text(qtbot, window, write_jsonl(tmp_path / "chats.jsonl", ROWS["sharegpt"]))
    window.text.set_training_config({"base_model": "plain-llama"}, tmp_path)
    qtbot.waitUntil(lambda: window.text.training.tokenizer.exact, timeout=10_000)
    preview = window.text_page.preview
    assert preview.heading.text() == "Rendered with the built-in “default” chat template"
    assert preview.note.text().startswith("The tokenizer has no chat template: shown with the built-in “default”")
    assert preview.trained_text() == ["A round shape.</s>"]  # the model's own eos token ends the answer
    assert "/ 1,024 tokens" in preview.count.text()  # the schema's default cutoff_len
