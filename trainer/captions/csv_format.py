"""``metadata.csv``: parsing with line numbers for every problem, and writing rows.

Accepted: the seed's ``filename,prompt``, Excel's BOM, header aliases, ``;`` or tab
separators and quoted multi-line captions. Problems a user makes by hand (an unquoted
caption with commas, a missing closing quote that swallows the rows after it, a row
without a separator) are reported on their line with what to do.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from .paths import is_image_name
from .problems import CaptionReadResult, Problem
from .rows import ParsedFile, Row, RowChecker, lines_with_ends

# Header names accepted for each role, compared lower-cased. The first name is the one a
# new file gets.
FILENAME_COLUMNS: tuple[str, ...] = ("filename", "file_name", "image", "file")
CAPTION_COLUMNS: tuple[str, ...] = ("prompt", "text", "caption")

_DELIMITERS = (",", ";", "\t")
QUOTE_HINT = (
    'put the caption in double quotes ("...") if it contains commas or line breaks; '
    'a double quote inside a quoted caption is written twice ("")'
)
_QUOTES_AND_BREAKS = re.compile(r'"|\r\n|\n|\r')
_ROW_LIKE = re.compile(r"^\s*[^\s,;\t\"][^,;\t\"]*\.(?:jpe?g|png|webp|bmp|tiff?)\s*[,;\t]", re.I)


def unclosed_quote_line(text: str, delimiter: str) -> int | None:
    """Line where a quoted field opens and the file ends before it closes, else ``None``.

    Follows the csv module's (non-strict) rules, which otherwise silently take the rest of
    the file as the field's text: a quote opens a field only at the start of a field, and
    inside one, ``""`` is an escaped quote. Only quotes and line breaks are visited (the
    start of a field is told by the character before the quote), so a 10,000-row file
    takes milliseconds.
    """
    ends = (delimiter, "\n", "\r")
    line, opened_at, state, quote_at = 1, 0, "out", -1
    for match in _QUOTES_AND_BREAKS.finditer(text):
        token, pos = match.group(), match.start()
        if state == "maybe_closed":
            if token == '"' and pos == quote_at + 1:
                state = "in"  # '""' is an escaped quote: still inside the field
                continue
            state = "out"  # the field closed at the previous quote
        if state == "in":
            if token == '"':
                state, quote_at = "maybe_closed", pos
            else:
                line += 1
            continue
        if token != '"':
            line += 1
        elif pos == 0 or text[pos - 1] in ends:
            state, opened_at = "in", line
        # Otherwise a quote in the middle of an unquoted field is just a character.
    return opened_at if state == "in" else None


def _swallowed_row(caption: str) -> tuple[int, str] | None:
    """If a multi-line caption contains a line that looks like a CSV row, return it.

    That is the sign of a missing closing quote that swallowed the rows after it.
    """
    if "\n" not in caption and "\r" not in caption:
        return None
    for offset, line in enumerate(lines_with_ends(caption)[1:], start=1):
        if _ROW_LIKE.match(line):
            return offset, line.strip()
    return None


def _find_column(header: list[str], names: tuple[str, ...]) -> int | None:
    lowered = [h.strip().lower() for h in header]
    for index, name in enumerate(lowered):
        if name in names:
            return index
    return None


def _parse_header(first_line: str) -> tuple[str, list[str], int | None, int | None]:
    """Pick the delimiter whose header has both a filename and a caption column."""
    best: tuple[str, list[str], int | None, int | None] | None = None
    for delimiter in _DELIMITERS:
        header = next(csv.reader([first_line], delimiter=delimiter), [])
        fcol = _find_column(header, FILENAME_COLUMNS)
        ccol = _find_column(header, CAPTION_COLUMNS)
        if fcol is not None and ccol is not None:
            return delimiter, header, fcol, ccol
        if best is None:
            best = (delimiter, header, fcol, ccol)
    assert best is not None
    return best


def parse_csv(text: str, path: Path) -> ParsedFile:
    """Split a CSV text into rows and read its captions; every problem has its line."""
    result = CaptionReadResult(source=path)
    parsed = ParsedFile(result=result)
    lines = lines_with_ends(text)
    # The header is the first non-blank line (a header cell cannot span lines).
    header_index = next((i for i, line in enumerate(lines) if line.strip()), None)
    if header_index is None:
        parsed.header_raw = text  # An empty file: no captions, nothing wrong with it.
        return parsed
    first = lines[header_index]
    parsed.newline = "\r\n" if first.endswith("\r\n") else "\n"
    parsed.header_raw = "".join(lines[: header_index + 1])
    delimiter, header, fcol, ccol = _parse_header(first.rstrip("\r\n"))
    if fcol is None or ccol is None:
        _report_bad_header(parsed, path, header_index + 1, header)
        return parsed
    parsed.header, parsed.delimiter = header, delimiter
    parsed.filename_col, parsed.caption_col = fcol, ccol

    unclosed = unclosed_quote_line(text, delimiter)
    checker = RowChecker(path, result)
    body = "".join(lines[header_index + 1 :])
    reader = csv.reader(io.StringIO(body, newline=""), delimiter=delimiter)
    offset, previous = header_index + 1, 0
    for fields in reader:
        start, end = offset + previous + 1, offset + reader.line_num
        previous = reader.line_num
        row = Row(start, end, "".join(lines[start - 1 : end]), record=fields)
        parsed.rows.append(row)  # blank rows too: a rewrite keeps them where they were
        if not any(f.strip() for f in fields):
            continue  # Blank lines and Excel's trailing ",,," rows carry nothing.
        if unclosed is not None and start <= unclosed <= end:
            checker.problem(
                start,
                f"a quoted field opens on line {unclosed} and is never closed, so lines "
                f"{unclosed}-{end} were read as one caption",
                "add the missing closing double quote (\") at the end of the caption",
            )
            parsed.fatal = True
            if len(fields) > fcol:
                checker.reject_name(fields[fcol])
            continue
        _check_row(parsed, checker, row, fields)
    return parsed


def _report_bad_header(parsed: ParsedFile, path: Path, line: int, header: list[str]) -> None:
    parsed.fatal = True
    parsed.result.readable = False
    found = ", ".join(repr(h.strip()) for h in header) or "nothing"
    if header and is_image_name(header[0].strip().strip('"')):
        message = f"has no header line (the first line names the image {header[0].strip()!r})"
        hint = "add 'filename,prompt' as the first line"
    else:
        message = (
            f"header must have a filename column ({', '.join(FILENAME_COLUMNS)}) and a "
            f"caption column ({', '.join(CAPTION_COLUMNS)}); found {found}"
        )
        hint = "make the first line 'filename,prompt' (separated by commas)"
    parsed.result.problems.append(Problem(str(path), line, message, hint))


def _check_row(parsed: ParsedFile, checker: RowChecker, row: Row, fields: list[str]) -> None:
    fcol, ccol = parsed.filename_col, parsed.caption_col
    width = len(parsed.header)
    if len(fields) < max(fcol, ccol) + 1:
        checker.problem(
            row.start,
            f"row has {len(fields)} field{'s' if len(fields) != 1 else ''}, but the header "
            f"has {width} columns ({', '.join(h.strip() for h in parsed.header)})",
            f"put a {_separator_name(parsed.delimiter)} between the filename and the caption; "
            + QUOTE_HINT,
        )
        if len(fields) > fcol:
            checker.reject_name(fields[fcol])
        return
    caption = fields[ccol]
    if any(e.strip() for e in fields[width:]):
        if ccol != width - 1:
            checker.problem(
                row.start, f"row has {len(fields)} fields, but the header has {width} columns",
                QUOTE_HINT,
            )
            checker.reject_name(fields[fcol])
            return
        # The usual cause: an unquoted caption with commas. Keep the whole caption.
        caption = parsed.delimiter.join(fields[ccol:])
        checker.problem(
            row.start,
            f"row has {len(fields)} fields, but the header has {width} columns; the extra "
            "fields were read as part of the caption",
            QUOTE_HINT + ", so that other tools read it the same way",
            severity="warning",
        )
    swallowed = _swallowed_row(caption)
    if swallowed is not None:
        checker.problem(
            row.start,
            f"the caption starting on line {row.start} runs over lines {row.start}-{row.end} "
            f"and contains what looks like another row ({swallowed[1]!r}); a closing double "
            "quote is probably missing",
            "add the missing closing double quote (\") at the end of the caption",
        )
        parsed.fatal = True
        checker.reject_name(fields[fcol])
        return
    key = checker.accept(row.start, fields[fcol], caption)
    if key is not None:
        row.key, row.caption, row.accepted = key, parsed.result.captions[key], True


def _separator_name(delimiter: str) -> str:
    return {",": "comma", ";": "semicolon", "\t": "tab"}[delimiter]


def csv_line(fields: list[str], delimiter: str = ",", newline: str = "\n") -> str:
    """One CSV row, quoted where needed, ending in ``newline``."""
    buffer = io.StringIO()
    # The csv module quotes a field only for the characters of *its* line terminator, so
    # with "\n" a caption holding a lone "\r" would be written bare and read back as two
    # rows. "\r\n" makes both special; the row then gets the file's own line ending.
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerow(fields)
    return buffer.getvalue()[: -len("\r\n")] + newline


def updated_csv_row(parsed: ParsedFile, row: Row, caption: str) -> str:
    """``row`` with a new caption; its other fields (known or not) are kept."""
    assert isinstance(row.record, list)
    # Pad short rows and drop the extra fields that were read as part of the caption.
    fields = (list(row.record) + [""] * len(parsed.header))[: len(parsed.header)]
    fields[parsed.caption_col] = caption
    ending = row.raw[len(row.raw.rstrip("\r\n")):] or parsed.newline
    return csv_line(fields, parsed.delimiter, ending)


def new_csv_row(parsed: ParsedFile, key: str, caption: str) -> str:
    """A row for an image the file does not list yet, in the file's own column layout."""
    if not parsed.header:
        return csv_line([key, caption], newline=parsed.newline)
    fields = [""] * len(parsed.header)
    fields[parsed.filename_col], fields[parsed.caption_col] = key, caption
    return csv_line(fields, parsed.delimiter, parsed.newline)


def new_csv_header(newline: str = "\n") -> str:
    """The header a new file gets: ``filename,prompt``."""
    return csv_line([FILENAME_COLUMNS[0], CAPTION_COLUMNS[0]], newline=newline)
