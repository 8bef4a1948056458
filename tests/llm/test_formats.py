"""Text datasets: the four row shapes read and normalised, format detection, and every bad row named."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from trainer.llm.formats import Turn, read_dataset

ROOT = Path(__file__).resolve().parents[2]


def write_jsonl(path: Path, rows: list) -> Path:
    """Rows as JSON Lines; a ``str`` row is written as it is (for broken lines)."""
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def where(dataset) -> list[tuple[str, int | None]]:
    return [(Path(p.path).name, p.line) for p in dataset.problems]


def test_alpaca_with_history_and_system_becomes_turns(tmp_path):
    path = write_jsonl(tmp_path / "alpaca.jsonl", [
        {"instruction": "Translate", "input": "Guten Tag", "output": "Good day", "system": "You translate.",
         "history": [["Hi", "Hello!"], ["Who are you?", "A translator."]]},
        {"instruction": "Say yes", "output": "Yes.", "system": ""},
    ])
    dataset = read_dataset(path)
    assert dataset.problems == []
    first, second = dataset.examples
    assert (first.source, first.line, first.format) == (path, 1, "alpaca")
    assert first.system == "You translate."
    assert first.turns == [Turn("user", "Hi"), Turn("assistant", "Hello!"), Turn("user", "Who are you?"),
                           Turn("assistant", "A translator."), Turn("user", "Translate\nGuten Tag"),
                           Turn("assistant", "Good day")]
    assert second.system is None and second.turns == [Turn("user", "Say yes"), Turn("assistant", "Yes.")]
    assert second.messages() == [{"role": "user", "content": "Say yes"}, {"role": "assistant", "content": "Yes."}]


def test_sharegpt_and_openai_rows_normalise_to_the_same_example(tmp_path):
    share = write_jsonl(tmp_path / "share.jsonl", [{"system": "Be brief.", "conversations": [
        {"from": "human", "value": "Hello"}, {"from": "gpt", "value": "Hi"},
        {"from": "user", "value": "Bye"}, {"from": "assistant", "value": "Bye!"}]}])
    openai = write_jsonl(tmp_path / "openai.jsonl", [{"messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi"}, {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "Bye!"}]}])
    a, b = read_dataset(share).examples[0], read_dataset(openai).examples[0]
    assert (a.format, b.format) == ("sharegpt", "openai")
    assert a.system == b.system == "Be brief."
    assert a.turns == b.turns == [Turn("user", "Hello"), Turn("assistant", "Hi"), Turn("user", "Bye"),
                                  Turn("assistant", "Bye!")]


def test_text_rows_and_a_json_array_with_element_lines(tmp_path):
    path = tmp_path / "corpus.json"
    path.write_text('[\n  {"text": "First document."},\n  {"text":\n    "Second."},\n  {"text": ""}\n]\n',
                    encoding="utf-8")
    dataset = read_dataset(path)
    assert [(e.text, e.line, e.is_text) for e in dataset.examples] == [("First document.", 2, True),
                                                                       ("Second.", 3, True)]
    assert where(dataset) == [("corpus.json", 5)]
    assert dataset.problems[0].message.startswith("element 3: ") and "empty" in dataset.problems[0].message


def test_a_folder_detects_each_files_format(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"instruction": "Q", "output": "A"}])
    write_jsonl(tmp_path / "b.jsonl", [{"conversations": [{"from": "human", "value": "Q"},
                                                          {"from": "gpt", "value": "A"}]}])
    (tmp_path / "c.json").write_text(json.dumps([{"messages": [{"role": "user", "content": "Q"},
                                                               {"role": "assistant", "content": "A"}]}]))
    write_jsonl(tmp_path / "d.jsonl", [{"text": "plain"}])
    write_jsonl(tmp_path / "_skipped.jsonl", ["not json at all"])
    (tmp_path / "notes.txt").write_text("not a dataset file")
    dataset = read_dataset(tmp_path)
    assert dataset.ok, dataset.problems
    assert {p.name: f for p, f in dataset.formats.items()} == {"a.jsonl": "alpaca", "b.jsonl": "sharegpt",
                                                               "c.json": "openai", "d.jsonl": "text"}
    assert [e.source.name for e in dataset.examples] == ["a.jsonl", "b.jsonl", "c.json", "d.jsonl"]


def test_dataset_format_set_in_the_config_rejects_rows_of_another_shape(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", [{"text": "one"}, {"instruction": "Q", "output": "A"}])
    dataset = read_dataset(path, dataset_format="text")
    assert [e.text for e in dataset.examples] == ["one"]
    assert where(dataset) == [("data.jsonl", 2)]
    assert "alpaca form" in dataset.problems[0].message and "dataset_format is text" in dataset.problems[0].message
    assert read_dataset(path, dataset_format="chat").problems[0].message == "dataset_format 'chat' is unknown"


def test_every_bad_row_is_named_with_its_file_and_line_at_once(tmp_path):
    alpaca = write_jsonl(tmp_path / "alpaca.jsonl", [
        {"instruction": "Good row", "output": "Fine."},            # 1
        '{"instruction": "broken", "output": "no closing brace"',  # 2 bad JSON
        {"instruction": "No answer"},                               # 3 missing field
        {"instruction": "Empty", "output": "   "},                  # 4 empty answer
        {"instruction": "Typed", "output": 42},                     # 5 wrong type
        {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]},  # 6 other format
        "",                                                          # 7 blank: skipped
        {"instruction": "Q", "output": "A", "history": [["only one"]]},  # 8 bad history
        '["a", "list"]',                                             # 9 not an object
        {"prompt": "?", "completion": "!"},                         # 10 unknown keys
        {"instruction": "Q", "output": "A", "history": [["Hi", ""]]},    # 11 empty answer in history
    ])
    openai = write_jsonl(tmp_path / "chat.jsonl", [
        {"messages": [{"role": "user", "content": "Q"}, {"role": "user", "content": "Q again"},
                      {"role": "assistant", "content": "A"}]},                                       # 1 order
        {"messages": [{"role": "user", "content": "Q"}, {"role": "tool", "content": "{}"}]},        # 2 unknown role
        {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]},       # 3 ends with user
        {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": ""}]},     # 4 empty answer
        {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": ["A"]}]},  # 5 wrong type
        {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"},
                      {"role": "system", "content": "late"}, {"role": "user", "content": "Q"},
                      {"role": "assistant", "content": "A"}]},                                       # 6 late system
        {"messages": "hello"},                                                                       # 7 not a list
        {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]},    # 8 good
    ])
    dataset = read_dataset(tmp_path)
    assert [(e.source.name, e.line) for e in dataset.examples] == [("alpaca.jsonl", 1), ("chat.jsonl", 8)]
    assert where(dataset) == [("alpaca.jsonl", n) for n in (2, 3, 4, 5, 6, 8, 9, 10, 11)] + [
        ("chat.jsonl", n) for n in range(1, 8)]
    messages = [p.message for p in dataset.problems]
    expected = ["not valid JSON", 'missing field "output"', "empty answer", '"output" is 42, not a string',
                "openai form, but the file is alpaca (decided by line 1, its first readable row)", "history pair 1",
                "is a list, not an object", 'its keys: "prompt", "completion"', "empty answer: history pair 1's answer",
                'roles out of order: message 2 is "user"', 'unknown role "tool"', "ends with message 2 (user)",
                "empty answer: message 2 (assistant)", '"content" is a list, not a string',
                "message 3 is a system message, which can only come first", '"messages" is a string, not a list']
    assert len(messages) == len(expected)
    for message, part in zip(messages, expected):
        assert part in message
    assert all(p.hint and p.is_error for p in dataset.problems)
    assert str(dataset.problems[0]).startswith(f"{alpaca}:2: the line is not valid JSON")
    assert str(dataset.problems[-1]).startswith(f"{openai}:7: ")
    assert not dataset.ok and dataset.summary().endswith("16 errors")


def test_bytes_that_are_not_utf8_are_named_on_their_line_and_the_rest_is_read(tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "first"}\n{"text": "caf\xe9"}\n{"text": "third"}\n{"text": "\xff"}\n')
    dataset = read_dataset(path)
    assert [e.text for e in dataset.examples] == ["first", "third"]
    assert where(dataset) == [("latin.jsonl", 2), ("latin.jsonl", 4)]
    assert "not valid UTF-8" in dataset.problems[0].message and "0xe9" in dataset.problems[0].message
    assert "UTF-8" in dataset.problems[0].hint
    array = tmp_path / "latin.json"
    array.write_bytes(b'[\n{"text": "ok"},\n{"text": "caf\xe9"}\n]')
    assert where(read_dataset(array)) == [("latin.json", 3)]


def test_a_broken_json_array_names_the_element_and_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[\n {"text": "one"},\n {"text": "two",,}\n]\n', encoding="utf-8")
    dataset = read_dataset(path)
    assert [e.text for e in dataset.examples] == ["one"]
    assert where(dataset) == [("broken.json", 3)]
    assert dataset.problems[0].message.startswith("element 2 is not valid JSON")
    (tmp_path / "object.json").write_text('{"data": []}')
    assert "not a JSON array" in read_dataset(tmp_path / "object.json").problems[0].message


def test_missing_and_empty_datasets_are_explained(tmp_path):
    assert read_dataset(tmp_path / "nope.jsonl").problems[0].message == "dataset_path does not exist"
    assert "no .jsonl or .json files" in read_dataset(tmp_path).problems[0].message
    (tmp_path / "empty.jsonl").write_text("\n\n")
    assert read_dataset(tmp_path / "empty.jsonl").problems[0].message == "the dataset has no rows"
    (tmp_path / "data.csv").write_text("a,b\n")
    assert read_dataset(tmp_path / "data.csv").problems[0].message == "is not a .jsonl or .json file"


def test_formats_and_templates_import_without_torch_or_transformers():
    code = ("import trainer.llm.formats, trainer.llm.templates, sys; "
            "assert not any(m in sys.modules for m in ('torch', 'transformers', 'tokenizers', 'safetensors')), "
            "sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'tokenizers'))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
