"""Opening a text dataset (LLM training data): its files, every row, where each row is, its problems.

A text dataset is a ``.jsonl`` / ``.json`` file, or a folder of them with no images (a folder
with images is an image dataset, whose ``metadata.jsonl`` is a caption file). Which files,
which rows are valid and what is wrong with the others is the trainer's reader's answer
(``trainer.llm.formats``), so the app says exactly what training will say; this module adds
what an editor needs: every row, valid or not (a bad row is listed so that a problem can
go to it), its JSON as read, and its place in the file (:mod:`.json_records`).

The shape of the rows follows :class:`~lora_studio.storage.dataset.OpenedDataset`, so that
the editing session handles both: ``entries`` are the rows, each with a ``rel`` that names
it (``chats.jsonl#3``: the file and the row's 0-based ordinal in it), and ``captions`` are
the rows' values as the session keeps them (:func:`~.json_records.canonical` JSON; a row
that is not JSON keeps its text and cannot be edited). Plain Python, no Qt: the app runs
:func:`open_text_dataset` in a worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trainer.llm.formats import DATASET_EXTENSIONS, dataset_files, iter_file
from trainer.llm.rows import ROW_EXAMPLES, row_format
from trainer.problems import Problem as TrainerProblem

from .caption_notes import from_trainer
from .dataset import DatasetError, OpenCancelled, files_snapshot
from .json_records import Span, canonical, decode, is_clean, json_spans, jsonl_spans, parse
from .names import find_images
from .problems import Problem


@dataclass
class TextRow:
    """One row of a text dataset file (valid or not)."""

    rel: str  # "<file>#<ordinal>", the row's name for the session and the journal
    file: Path
    index: int  # 0-based ordinal among the file's rows
    line: int  # 1-based line the row starts on
    value: object  # the row's JSON (None when its text is not valid JSON)
    raw: str  # the row's text as in the file
    fmt: str  # the file's row format ("alpaca", "sharegpt", "openai", "text"; "" when unknown)

    @property
    def editable(self) -> bool:
        """Whether the row is a JSON object (a row that is not must be fixed in a text editor)."""
        return isinstance(self.value, dict)


@dataclass
class TextFile:
    """One file of the dataset, as read: its text (the base every save starts from) and its rows."""

    path: Path
    name: str  # the path from the dataset's folder, as rows and messages name the file
    text: str  # decoded with surrogateescape: encodes back to the same bytes
    kind: str  # "jsonl" or "json"
    fmt: str
    spans: list[Span]
    rows: list[TextRow]
    problems: list[Problem]  # the trainer's, with their lines
    read_only: str | None = None  # why the file is not rewritten (None: it may be)

    @property
    def format_name(self) -> str:
        """What the status bar says of the file's rows."""
        return self.fmt or "unknown"


@dataclass
class OpenedTextDataset:
    """Everything read from a text dataset; ``entries`` and ``problems`` are those of all its files."""

    root: Path  # the file or folder opened
    files: list[TextFile]
    snapshot: dict[str, tuple[int, int]] = field(default_factory=dict)  # the files' (mtime, size)
    entries: list[TextRow] = field(init=False)
    problems: list[Problem] = field(init=False)

    def __post_init__(self) -> None:
        self.entries = [row for f in self.files for row in f.rows]
        self.problems = [problem for f in self.files for problem in f.problems]

    @property
    def captions(self) -> list[str]:
        """Each row's value as the session keeps it (named as the image datasets' are)."""
        return [row_value(row) for row in self.entries]

    @property
    def store(self) -> "OpenedTextDataset":
        """The dataset is its own store: the text each save starts from (the session's name for it)."""
        return self

    @property
    def format(self) -> str:
        """The row formats of the files, e.g. ``sharegpt`` (``alpaca + openai`` when they differ)."""
        return " + ".join(dict.fromkeys(f.format_name for f in self.files)) or "no rows"

    def file(self, path: Path) -> TextFile | None:
        """The file at ``path``, if it is one of the dataset's."""
        return next((f for f in self.files if f.path == path), None)


def row_value(row: TextRow) -> str:
    """The session's value of a row: its canonical JSON, or its trimmed text when it is not JSON."""
    return canonical(row.value) if row.value is not None else row.raw.strip()


def is_text_dataset(path: Path) -> bool:
    """Whether ``path`` opens as a text dataset: a .jsonl/.json file, or a folder of them without images."""
    path = Path(path)
    if path.is_file():
        return path.suffix.lower() in DATASET_EXTENSIONS
    if not path.is_dir():
        return False
    # Images first decide: a folder of images with a metadata.jsonl is an image dataset.
    return bool(text_dataset_files(path)) and not find_images(path)


def text_dataset_files(folder: Path) -> list[Path]:
    """The folder's dataset files when it looks like a text dataset: a .jsonl file, or a .json array.

    A folder whose only .json files are objects (a model's config.json, a tool's settings) is
    not a text dataset, though the trainer would try to read them if pointed at it.
    """
    files, _ = dataset_files(folder)
    return files if any(_holds_rows(path) for path in files) else []


def _holds_rows(path: Path) -> bool:
    if path.suffix.lower() == ".jsonl":
        return True
    try:
        with path.open("rb") as handle:
            head = handle.read(256)
    except OSError:
        return False
    return head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n").startswith(b"[")


def open_text_dataset(path: Path, progress=None, cancel=None) -> OpenedTextDataset:
    """Read a text dataset: every file's rows, their places, and every problem the trainer finds.

    ``progress(done, total)`` counts files; ``cancel`` (the worker's token) stops between files.
    """
    root = Path(path)
    files, problems = dataset_files(root)
    if not files:
        message = problems[0].message if problems else "has no .jsonl or .json files"
        raise DatasetError(f"{root} {message}. Choose a .jsonl/.json file or a folder of them.")
    base = root if root.is_dir() else root.parent
    read: list[TextFile] = []
    for done, file_path in enumerate(files):
        if cancel is not None and cancel.cancelled:
            raise OpenCancelled(f"Opening {root} was cancelled.")
        if progress is not None:
            progress(done, len(files))
        read.append(read_text_file(file_path, file_path.relative_to(base).as_posix()))
    return OpenedTextDataset(root, read, text_files_snapshot(root))


def read_text_file(path: Path, name: str) -> TextFile:
    """One file: its text, its rows (named ``name#ordinal``) and the trainer's problems with it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path} cannot be read ({exc.strerror}). Check that the share is mounted.") from None
    text = decode(data)
    del data
    kind = "jsonl" if path.suffix.lower() == ".jsonl" else "json"
    read_only = None
    if kind == "jsonl":
        spans = jsonl_spans(text)
    else:
        spans, complete = json_spans(text)
        if not complete:
            read_only = "the file is not one valid JSON array; fix it in a text editor first"
        elif not is_clean(text):
            read_only = "the file is not valid UTF-8; fix its encoding first"
    trainer_problems: list[TrainerProblem] = []
    fmt = ""
    for item in iter_file(path):
        if isinstance(item, TrainerProblem):
            trainer_problems.append(item)
        elif not fmt:
            fmt = item.format
    rows = []
    for span in spans:
        raw = text[span.start:span.end]
        value = parse(raw)
        # A row of another shape than its file's is a problem, but it is shown (and fixed) as what it is.
        rows.append(TextRow(f"{name}#{span.index}", path, span.index, span.line, value, raw,
                            _own_format(value) or fmt))
    if not fmt:
        fmt = next((r.fmt for r in rows if r.fmt), "")
    problems = [from_trainer(p) for p in trainer_problems]
    if not spans and not problems:
        problems.append(Problem(path, None, "has no rows.", f"Add rows, one JSON object per line, like "
                                f"{ROW_EXAMPLES['alpaca']}.", "warning"))
    return TextFile(path, name, text, kind, fmt, spans, rows, problems, read_only)


def _own_format(value: object) -> str:
    """The format a row's keys say ('' when they say none)."""
    return (row_format(value) or "") if isinstance(value, dict) else ""


def text_files_snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """``{file: (mtime_ns, size)}`` of the dataset's files, to notice edits made elsewhere.

    For a folder, a file added or removed there changes the snapshot too.
    """
    return files_snapshot(dataset_files(root)[0])
