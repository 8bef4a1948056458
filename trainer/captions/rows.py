"""The parsed form of a metadata file that both the reader and the writer use.

Every data line of the file becomes a :class:`Row` that keeps its exact text, so that a
writer can put back untouched what it did not change, byte for byte.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

from .paths import safe_relative_path
from .problems import CaptionReadResult, Problem


@dataclass
class Row:
    """One row of a CSV/JSONL file (a blank line, a data row, or a line that is broken)."""

    start: int  # 1-based first line
    end: int  # 1-based last line
    raw: str  # the exact text of its lines, line endings included (none on a last line without)
    key: str | None = None  # normalised filename when the row was accepted
    caption: str | None = None
    record: list[str] | dict | None = None  # parsed fields (CSV) or object (JSONL)
    accepted: bool = False


@dataclass
class ParsedFile:
    """A metadata file split into rows, with what the reader concluded."""

    result: CaptionReadResult
    rows: list[Row] = field(default_factory=list)
    # CSV only:
    header_raw: str = ""
    header: list[str] = field(default_factory=list)
    filename_col: int = 0
    caption_col: int = 1
    delimiter: str = ","
    # The line ending for rows the writer adds.
    newline: str = "\n"
    # JSONL only: the key names the file uses, for new rows.
    filename_key: str = "file_name"
    caption_key: str = "text"
    # A structural problem (no header, unclosed quote): rewriting would lose text.
    fatal: bool = False


class RowChecker:
    """Shared row checks for CSV and JSONL: filename safety and duplicates."""

    def __init__(self, path: Path, result: CaptionReadResult) -> None:
        self.path = path
        self.result = result
        self.first_line: dict[str, int] = {}

    def problem(self, line: int, message: str, hint: str, severity: str = "error") -> None:
        """Report a problem on ``line`` of this file."""
        self.result.problems.append(Problem(str(self.path), line, message, hint, severity))

    def accept(self, line: int, name: str, caption: str) -> str | None:
        """Record a row's caption; return its key, or ``None`` (with a problem) if rejected."""
        try:
            key = safe_relative_path(name)
        except ValueError as exc:
            hint = (
                "fill in the image's filename or delete the row"
                if not name.strip()
                else "use a path relative to the dataset folder; files outside it are never read"
            )
            self.problem(line, f"row {exc}", hint)
            return None
        if key in self.first_line:
            self.problem(
                line,
                f"{key!r} is listed twice, on line {self.first_line[key]} and on line {line}; "
                f"the row on line {line} is ignored",
                "keep one row for each image and delete the other",
            )
            self.result.rejected.add(key)
            return None
        self.first_line[key] = line
        self.result.captions[key] = caption.strip()
        self.result.lines[key] = line
        return key

    def reject_name(self, name: object) -> None:
        """Remember that the image named by a rejected row already has a problem."""
        if isinstance(name, str):
            try:
                self.result.rejected.add(safe_relative_path(name))
            except ValueError:
                pass


def lines_with_ends(text: str) -> list[str]:
    """Split exactly like the csv module's input (``newline=""``): on \\n, \\r\\n and \\r only."""
    return io.StringIO(text, newline="").readlines()
