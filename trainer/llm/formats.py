"""Text datasets for LLM training: read ``.jsonl`` / ``.json`` files into examples (torch-free).

``dataset_path`` is one file or a folder of them (its ``.jsonl`` and ``.json`` files, sorted by
name, not recursive; names starting with ``.`` or ``_`` are skipped, as in image datasets).
A ``.jsonl`` file has one JSON object per line; a ``.json`` file is one JSON array of objects.
Rows come in four shapes (see :mod:`trainer.llm.rows`):

- alpaca: ``instruction``, optional ``input``, ``output``, optional ``system`` and ``history``
  (a list of ``[question, answer]`` pairs, earlier turns of the same chat);
- sharegpt: ``conversations``, a list of ``{"from": "human"|"gpt"|"system", "value": ...}``
  (``user``/``assistant`` are accepted too), optional top-level ``system``;
- OpenAI messages: ``messages``, a list of ``{"role": "system"|"user"|"assistant", "content": ...}``;
- plain ``text`` rows, for continued pre-training.

Each file has one shape: ``dataset_format`` says which, or with ``auto`` (the default) the
first row with a known key decides, file by file. Every row becomes an :class:`Example`.

Nothing stops at the first problem: :func:`read_dataset` returns every bad row, each a
:class:`~trainer.problems.Problem` with its file and line and what to do (the image datasets'
problem type, so the app and ``validate`` show both the same way). Where a problem's line
is: for ``.jsonl`` the file's physical line (1-based); for ``.json`` the line on which the
array element starts, and the message names the element's 1-based index in the array.

``.jsonl`` files stream line by line, so a large file is never held as one string. A
``.json`` array is read whole (its bytes, then its text once: the standard library cannot
parse an array piecewise); its elements are parsed one by one so that each one's line is
known without a second pass.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from trainer.captions.paths import is_skipped_name
from trainer.captions.text import BOM, decode_text
from trainer.problems import Problem
from trainer.wording import plural

from .rows import ROW_EXAMPLES, ROW_FORMATS, Turn, check_row, json_type, row_format

__all__ = ["DATASET_EXTENSIONS", "DATASET_FORMATS", "Example", "TextDataset", "Turn", "dataset_files",
           "iter_file", "read_dataset"]

DATASET_FORMATS: tuple[str, ...] = ("auto", *ROW_FORMATS)
DATASET_EXTENSIONS: tuple[str, ...] = (".jsonl", ".json")
_WHITESPACE = re.compile(r"[ \t\n\r]*")  # JSON's whitespace, exactly
_KEYS_HINT = ('each row needs the keys of one format: "instruction"/"output" (alpaca), "conversations" (sharegpt), '
              '"messages" (OpenAI) or "text"')


@dataclass
class Example:
    """One training example, whatever shape its row had.

    A chat has an optional ``system`` prompt and ``turns`` that alternate user/assistant and end
    with the assistant; a plain-text row has ``text`` and no turns. ``source`` and ``line`` say
    where it came from (``line`` as for problems, see the module docstring); ``format`` is the
    row shape (alpaca, sharegpt, openai or text; empty for an example built in code).
    """

    source: Path
    line: int
    system: str | None = None
    turns: list[Turn] = field(default_factory=list)
    text: str | None = None
    format: str = ""

    @property
    def is_text(self) -> bool:
        """True for a plain-text (continued pre-training) row."""
        return self.text is not None

    def messages(self) -> list[dict[str, str]]:
        """The chat as Hugging Face chat-template messages: ``[{"role": ..., "content": ...}, ...]``."""
        head = [{"role": "system", "content": self.system}] if self.system is not None else []
        return head + [{"role": turn.role, "content": turn.content} for turn in self.turns]


@dataclass
class TextDataset:
    """What :func:`read_dataset` found: the examples, every problem, and each file's format."""

    path: Path
    examples: list[Example] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    formats: dict[Path, str] = field(default_factory=dict)

    @property
    def errors(self) -> list[Problem]:
        """Problems that must be fixed before training."""
        return [p for p in self.problems if p.is_error]

    @property
    def ok(self) -> bool:
        """True when there is nothing that stops training."""
        return not self.errors

    def summary(self) -> str:
        """One line for logs and status bars."""
        shapes = ", ".join(sorted(set(self.formats.values()))) or "no rows"
        return (f"{plural(len(self.examples), 'example')} in {plural(len(self.formats), 'file')} ({shapes}), "
                f"{plural(len(self.errors), 'error')}")


def dataset_files(dataset_path: Path | str) -> tuple[list[Path], list[Problem]]:
    """The files ``dataset_path`` names (itself, or a folder's dataset files), or why there are none."""
    path = Path(dataset_path)
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.suffix.lower() in DATASET_EXTENSIONS
                        and not is_skipped_name(p.name) and p.is_file()), key=lambda p: p.name)
        if not files:
            return [], [Problem(str(path), None, "the folder has no .jsonl or .json files",
                                "put the dataset files in this folder, or point dataset_path to a file")]
        return files, []
    if not path.exists():
        return [], [Problem(str(path), None, "dataset_path does not exist", "check dataset_path in the config")]
    if path.suffix.lower() not in DATASET_EXTENSIONS:
        return [], [Problem(str(path), None, "is not a .jsonl or .json file",
                            "save the dataset as JSON Lines (.jsonl, one object per line) or a .json array")]
    return [path], []


def read_dataset(dataset_path: Path | str, dataset_format: str = "auto") -> TextDataset:
    """Read every example of a text dataset and report every problem in it, all at once."""
    dataset = TextDataset(path=Path(dataset_path))
    if dataset_format not in DATASET_FORMATS:
        dataset.problems.append(Problem(str(dataset_path), None, f"dataset_format {dataset_format!r} is unknown",
                                        f"set dataset_format to one of {', '.join(DATASET_FORMATS)}"))
        return dataset
    files, dataset.problems = dataset_files(dataset_path)
    for path in files:
        for item in iter_file(path, dataset_format):
            if isinstance(item, Problem):
                dataset.problems.append(item)
            else:
                dataset.examples.append(item)
                dataset.formats.setdefault(path, item.format)
    if files and not dataset.examples and not dataset.problems:
        dataset.problems.append(Problem(str(dataset.path), None, "the dataset has no rows",
                                        f"add rows, one JSON object per line, like {ROW_EXAMPLES['alpaca']}"))
    return dataset


def iter_file(path: Path, dataset_format: str = "auto") -> Iterator[Example | Problem]:
    """The examples of one file, and a :class:`Problem` for each bad row, in file order."""
    records = _jsonl_records(path) if path.suffix.lower() == ".jsonl" else _json_records(path)
    file_format = None if dataset_format == "auto" else dataset_format
    # Why the file has its format, for the message about a row of another shape.
    because = f"dataset_format is {dataset_format}"
    for record in records:
        if isinstance(record, Problem):
            yield record
            continue
        line, where, obj = record
        if not isinstance(obj, dict):
            yield Problem(str(path), line, f"{where}the row is {json_type(obj)}, not an object", _KEYS_HINT)
            continue
        shape = row_format(obj)
        if shape is None:
            keys = ", ".join(json.dumps(k) for k in list(obj)[:6]) or "none"
            yield Problem(str(path), line, f"{where}the row has none of the keys of a known format (its keys: {keys})",
                          _KEYS_HINT)
            continue
        if file_format is None:
            file_format, because = shape, f"the file is {shape} (decided by line {line}, its first readable row)"
        if shape != file_format:
            yield Problem(str(path), line, f"{where}the row is in {shape} form, but {because}",
                          f"write it as {ROW_EXAMPLES[file_format]}, or move it to a file of {shape} rows")
            continue
        checked, issues = check_row(obj, file_format)
        for message, hint in issues:
            yield Problem(str(path), line, where + message, hint)
        if checked is not None:
            yield Example(path, line, checked.system, checked.turns or [], checked.text, file_format)


# A record is (line, "element N: " or "", the parsed JSON value) or a Problem.
_Record = tuple[int, str, object] | Problem


def _jsonl_records(path: Path) -> Iterator[_Record]:
    """One record per non-blank line, read line by line (each line decoded on its own)."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        yield Problem(str(path), None, f"cannot be read: {exc.strerror or exc}", "check that the file is readable")
        return
    with handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(BOM):
                raw = raw[len(BOM):]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                # The caption readers' message and hint; the line is this one, not the slice's first.
                _, _, problem = decode_text(raw, path, "dataset file")
                assert problem is not None
                yield dataclasses.replace(problem, line=number)
                continue
            if not text.strip():
                continue
            try:
                yield number, "", json.loads(text)
            except json.JSONDecodeError as exc:
                yield Problem(str(path), number, f"the line is not valid JSON: {exc.msg} (column {exc.colno})",
                              f"each line must be one complete JSON object, like {ROW_EXAMPLES['alpaca']}")


def _json_records(path: Path) -> Iterator[_Record]:
    """One record per element of the file's top-level array; a syntax error ends the file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        yield Problem(str(path), None, f"cannot be read: {exc.strerror or exc}", "check that the file is readable")
        return
    text, _, problem = decode_text(data, path, "dataset file")
    del data  # keep one copy of a large file in memory, not two
    if problem is not None:
        yield problem
        return
    decoder = json.JSONDecoder()
    pos = _WHITESPACE.match(text, 0).end()
    if pos == len(text):
        return  # an empty file: read_dataset reports a dataset without rows
    if text[pos] != "[":
        yield Problem(str(path), text.count("\n", 0, pos) + 1, "the file is not a JSON array of objects",
                      "a .json dataset is one array, [{...}, {...}]; or write one object per line in a .jsonl file")
        return
    stop_hint = ("fix the JSON there; the rest of a .json file cannot be read past a syntax error "
                 "(in a .jsonl file, one object per line, every line is checked on its own)")
    line, counted, index = 1, 0, 0
    pos = _WHITESPACE.match(text, pos + 1).end()
    if text.startswith("]", pos):
        return
    while True:
        index += 1
        line += text.count("\n", counted, pos)  # counted incrementally: one pass over the text in all
        counted = pos
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            yield Problem(str(path), exc.lineno, f"element {index} is not valid JSON: {exc.msg} (column {exc.colno})",
                          stop_hint)
            return
        yield line, f"element {index}: ", value
        pos = _WHITESPACE.match(text, end).end()
        if text.startswith(",", pos):
            pos = _WHITESPACE.match(text, pos + 1).end()
            continue
        if text.startswith("]", pos) and _WHITESPACE.match(text, pos + 1).end() == len(text):
            return
        expected = "',' or ']'" if not text.startswith("]", pos) else "nothing after the closing ']'"
        yield Problem(str(path), text.count("\n", 0, pos) + 1, f"after element {index}, expected {expected}",
                      stop_hint)
        return
