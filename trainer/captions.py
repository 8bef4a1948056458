"""Caption files: read, write and convert the three formats a dataset can use (torch-free).

- ``metadata.csv`` with ``filename,prompt`` (the seed's format; Excel's BOM, header aliases,
  ``;`` or tab separators and quoted multi-line captions are accepted);
- Hugging Face imagefolder ``metadata.jsonl`` with ``file_name`` and ``text`` per line;
- kohya ``.txt`` sidecars (``img.png`` + ``img.txt``).

Captions are keyed by the image's POSIX path relative to the dataset folder
(``"10_style/img_001.jpg"``). Readers never stop at the first problem: they return every
:class:`Problem` with the file, the line and what to do. A filename in a caption file can
never reach outside the dataset folder (``../x.png``, ``/etc/x.png`` are reported, not read).

Writers are atomic (:mod:`trainer.fsutil`) and conservative: rows they do not understand are
kept verbatim, rows whose caption did not change keep their exact bytes, extra columns and
keys survive, and a file whose structure cannot be read is refused rather than overwritten.

This module imports only the standard library: the desktop app imports it without torch.
"""

from __future__ import annotations

import csv
import enum
import io
import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from trainer.fsutil import atomic_write_text

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
)

# Header names accepted for each role, compared lower-cased. The first name is the one a
# new file gets.
FILENAME_COLUMNS: tuple[str, ...] = ("filename", "file_name", "image", "file")
CAPTION_COLUMNS: tuple[str, ...] = ("prompt", "text", "caption")
JSONL_FILENAME_KEYS: tuple[str, ...] = ("file_name", "filename", "file", "image")
JSONL_CAPTION_KEYS: tuple[str, ...] = ("text", "caption", "prompt")

_CSV_DELIMITERS = (",", ";", "\t")
_SAVE_AS_UTF8_HINT = (
    "open it in a text editor and save it as UTF-8 (in Excel: File > Save As > 'CSV UTF-8')"
)
_QUOTE_HINT = (
    'put the caption in double quotes ("...") if it contains commas or line breaks; '
    'a double quote inside a quoted caption is written twice ("")'
)


class CaptionFormat(str, enum.Enum):
    """Where a dataset keeps its captions."""

    CSV = "csv"
    TXT = "txt"
    JSONL = "jsonl"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset, said so that a user can fix it."""

    path: str
    line: int | None
    message: str
    hint: str
    severity: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message} — {self.hint}"

    @property
    def is_error(self) -> bool:
        """True for problems that stop training (warnings do not)."""
        return self.severity == "error"


class CaptionFileError(ValueError):
    """A caption file cannot be written (or converted) without losing what is in it."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class CaptionReadResult:
    """Everything a reader learned: the scan uses more than the captions themselves."""

    captions: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    # Line of the row that gave each caption (CSV/JSONL), for messages about that row.
    lines: dict[str, int] = field(default_factory=dict)
    # Images named by rows that were rejected: they already have a problem, so the scan
    # does not report them a second time as "has no caption".
    rejected: set[str] = field(default_factory=set)
    # False when the file as a whole could not be read (missing, not UTF-8, no header):
    # then every image lacks a caption for one reason that is already reported.
    readable: bool = True
    source: Path | None = None


# --------------------------------------------------------------------------------------
# Paths


def safe_relative_path(name: str) -> str:
    """Return ``name`` as a normalised POSIX path inside the dataset folder.

    Backslashes count as separators (captions files are often written on Windows) and
    ``./`` prefixes are dropped. Raises ``ValueError`` with a user-facing reason for an
    empty name, an absolute path, or a path whose ``..`` parts leave the folder.
    """
    cleaned = name.strip().replace("\\", "/")
    if not cleaned:
        raise ValueError("has an empty filename")
    if cleaned.startswith("/") or re.match(r"^[A-Za-z]:", cleaned) or "\x00" in cleaned:
        raise ValueError(f"names {name.strip()!r}, which escapes the dataset folder")
    normal = posixpath.normpath(cleaned)
    if normal == ".." or normal.startswith("../"):
        raise ValueError(f"names {name.strip()!r}, which escapes the dataset folder")
    if normal == ".":
        raise ValueError(f"names {name.strip()!r}, which is the dataset folder, not a file")
    return normal


def is_image_name(name: str) -> bool:
    """True if ``name`` has one of :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    return posixpath.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def sidecar_path(image_path: Path, caption_extension: str = ".txt") -> Path:
    """The kohya caption file of an image: ``img.png`` -> ``img.txt``."""
    return image_path.with_suffix(_check_caption_extension(caption_extension))


def _check_caption_extension(ext: str) -> str:
    ext = ext if ext.startswith(".") else f".{ext}"
    # A caption extension equal to an image extension would overwrite the images.
    if ext.lower() in IMAGE_EXTENSIONS or len(ext) < 2 or "/" in ext or "\\" in ext:
        raise ValueError(f"caption_extension {ext!r} cannot be used for caption files")
    return ext


# --------------------------------------------------------------------------------------
# Format detection


def default_metadata_path(folder: Path | str, fmt: CaptionFormat) -> Path | None:
    """``folder/metadata.csv`` or ``folder/metadata.jsonl``; ``None`` for TXT sidecars."""
    fmt = CaptionFormat(fmt)
    if fmt is CaptionFormat.TXT:
        return None
    return Path(folder) / f"metadata.{fmt.value}"


def detect_format(
    folder: Path | str,
    metadata_path: Path | str | None = None,
    caption_extension: str = ".txt",
) -> CaptionFormat:
    """Decide which caption format a dataset uses.

    A given ``metadata_path`` decides by its suffix (``.csv`` or ``.jsonl``; anything else
    raises ``ValueError``). Otherwise ``metadata.csv`` in the folder means CSV,
    ``metadata.jsonl`` means JSONL, and neither means ``caption_extension`` sidecars.
    """
    del caption_extension  # Sidecars are the fallback; their extension does not decide.
    if metadata_path is not None:
        suffix = Path(metadata_path).suffix.lower()
        if suffix == ".csv":
            return CaptionFormat.CSV
        if suffix == ".jsonl":
            return CaptionFormat.JSONL
        raise ValueError(
            f"metadata_path {str(metadata_path)!r} must end in .csv or .jsonl; "
            "leave it empty to use .txt caption files next to the images"
        )
    folder = Path(folder)
    if (folder / "metadata.csv").is_file():
        return CaptionFormat.CSV
    if (folder / "metadata.jsonl").is_file():
        return CaptionFormat.JSONL
    return CaptionFormat.TXT


# --------------------------------------------------------------------------------------
# Reading


def read_captions(
    folder: Path | str,
    fmt: CaptionFormat,
    metadata_path: Path | str | None = None,
    caption_extension: str = ".txt",
) -> tuple[dict[str, str], list[Problem]]:
    """Read a dataset's captions: ``({"10_style/img.jpg": "a caption", ...}, problems)``."""
    result = load_captions(folder, fmt, metadata_path, caption_extension)
    return result.captions, result.problems


def load_captions(
    folder: Path | str,
    fmt: CaptionFormat,
    metadata_path: Path | str | None = None,
    caption_extension: str = ".txt",
    images: Iterable[Path] | None = None,
) -> CaptionReadResult:
    """Like :func:`read_captions`, with the row line numbers and rejected names as well.

    ``images`` (absolute paths) is used for TXT sidecars; when omitted the folder is
    scanned with :func:`trainer.dataset_scan.find_images`.
    """
    folder = Path(folder)
    fmt = CaptionFormat(fmt)
    if fmt is CaptionFormat.TXT:
        if images is None:
            # Imported here because dataset_scan imports this module.
            from trainer.dataset_scan import find_images

            images = find_images(folder)
        return _read_sidecars(folder, images, caption_extension)
    path = Path(metadata_path) if metadata_path is not None else default_metadata_path(folder, fmt)
    assert path is not None
    text, problem = _read_utf8(path, "metadata file")
    if problem is not None:
        return CaptionReadResult(problems=[problem], readable=False, source=path)
    if fmt is CaptionFormat.CSV:
        return _parse_csv(text, path).result
    return _parse_jsonl(text, path).result


def _read_utf8(path: Path, what: str) -> tuple[str, Problem | None]:
    """Read a text file as UTF-8 (a BOM is accepted), or say why it cannot be read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return "", Problem(
            str(path), None, f"{what} does not exist",
            "check the path (metadata_path in the config), or remove it to use .txt "
            "caption files next to the images",
        )
    except IsADirectoryError:
        return "", Problem(str(path), None, f"{what} is a folder, not a file", "point to the file")
    except OSError as exc:
        return "", Problem(
            str(path), None, f"{what} cannot be read: {exc.strerror or exc}",
            "check that the file is readable by this user",
        )
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return "", Problem(
            str(path), line,
            f"is not valid UTF-8 text (byte 0x{data[exc.start]:02x} cannot be decoded)",
            _SAVE_AS_UTF8_HINT,
        )


@dataclass
class _Row:
    """One data row of a CSV/JSONL file, as the writer needs it."""

    start: int  # 1-based first line
    end: int  # 1-based last line
    raw: str  # the exact text of its lines, line endings included
    key: str | None  # normalised filename when the row was accepted
    caption: str | None
    record: list[str] | dict | None  # parsed fields (CSV) or object (JSONL)
    accepted: bool


@dataclass
class _Parsed:
    result: CaptionReadResult
    rows: list[_Row]
    # CSV only:
    header_raw: str = ""
    header: list[str] = field(default_factory=list)
    filename_col: int = 0
    caption_col: int = 1
    delimiter: str = ","
    newline: str = "\n"
    # JSONL only: the key names the file uses, for new rows.
    filename_key: str = "file_name"
    caption_key: str = "text"
    # A structural problem (no header, unclosed quote): rewriting would lose text.
    fatal: bool = False


class _RowChecker:
    """Shared row checks for CSV and JSONL: filename safety and duplicates."""

    def __init__(self, path: Path, result: CaptionReadResult) -> None:
        self.path = path
        self.result = result
        self.first_line: dict[str, int] = {}

    def problem(self, line: int, message: str, hint: str, severity: str = "error") -> None:
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


def _lines_with_ends(text: str) -> list[str]:
    # Split exactly like the csv module's input (``newline=""``): on \n, \r\n and \r only.
    return io.StringIO(text, newline="").readlines()


def _unclosed_quote_line(text: str, delimiter: str) -> int | None:
    """Line where a quoted field opens and the file ends before it closes, else ``None``.

    A small copy of the csv module's (non-strict) quote states: the csv module itself
    silently takes the rest of the file as the field's text.
    """
    state, opened_at = "start", 0  # states: start | field | quoted | quote_in_quoted
    ends = (delimiter, "\n", "\r")
    for number, line in enumerate(_lines_with_ends(text), start=1):
        for ch in line:
            if state == "quoted":
                if ch == '"':
                    state = "quote_in_quoted"
            elif state == "quote_in_quoted":
                # '""' is an escaped quote; anything else closes the field.
                state = "quoted" if ch == '"' else ("start" if ch in ends else "field")
            elif ch == '"' and state == "start":
                state, opened_at = "quoted", number
            else:
                state = "start" if ch in ends else "field"
    return opened_at if state == "quoted" else None


_ROW_LIKE = re.compile(r"^\s*[^\s,;\t\"][^,;\t\"]*\.(?:jpe?g|png|webp|bmp|tiff?)\s*[,;\t]", re.I)


def _swallowed_row(caption: str) -> tuple[int, str] | None:
    """If a multi-line caption contains a line that looks like a CSV row, return it.

    That is the sign of a missing closing quote that swallowed the rows after it.
    """
    for offset, line in enumerate(_lines_with_ends(caption)[1:], start=1):
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
    for delimiter in _CSV_DELIMITERS:
        header = next(csv.reader([first_line], delimiter=delimiter), [])
        fcol = _find_column(header, FILENAME_COLUMNS)
        ccol = _find_column(header, CAPTION_COLUMNS)
        if fcol is not None and ccol is not None:
            return delimiter, header, fcol, ccol
        if best is None:
            best = (delimiter, header, fcol, ccol)
    assert best is not None
    return best


def _parse_csv(text: str, path: Path) -> _Parsed:
    result = CaptionReadResult(source=path)
    parsed = _Parsed(result=result, rows=[])
    lines = _lines_with_ends(text)
    # The header is the first non-blank line (a header cell cannot span lines).
    header_index = next((i for i, line in enumerate(lines) if line.strip()), None)
    if header_index is None:
        return parsed  # An empty file: no captions, nothing wrong with the file itself.
    first = lines[header_index]
    parsed.newline = "\r\n" if first.endswith("\r\n") else "\n"
    parsed.header_raw = "".join(lines[: header_index + 1])
    delimiter, header, fcol, ccol = _parse_header(first.rstrip("\r\n"))
    if fcol is None or ccol is None:
        _report_bad_header(parsed, path, header_index + 1, header)
        return parsed
    parsed.header, parsed.delimiter = header, delimiter
    parsed.filename_col, parsed.caption_col = fcol, ccol

    unclosed = _unclosed_quote_line(text, delimiter)
    checker = _RowChecker(path, result)
    body = "".join(lines[header_index + 1 :])
    reader = csv.reader(io.StringIO(body, newline=""), delimiter=delimiter)
    offset, previous = header_index + 1, 0
    for fields in reader:
        start, end = offset + previous + 1, offset + reader.line_num
        previous = reader.line_num
        raw = "".join(lines[start - 1 : end])
        if not any(f.strip() for f in fields):
            continue  # Blank lines and Excel's trailing ",,," rows carry nothing.
        row = _Row(start, end, raw, None, None, fields, accepted=False)
        parsed.rows.append(row)
        if unclosed is not None and start <= unclosed <= end:
            checker.problem(
                start,
                f"a quoted field opens on line {unclosed} and is never closed, so lines "
                f"{unclosed}-{end} were read as one caption",
                "add the missing closing double quote (\") at the end of the caption",
            )
            parsed.fatal = True
            _reject_name(result, fields, fcol)
            continue
        _check_csv_row(parsed, checker, row, fields)
    return parsed


def _report_bad_header(parsed: _Parsed, path: Path, line: int, header: list[str]) -> None:
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


def _reject_name(result: CaptionReadResult, fields: list[str], fcol: int) -> None:
    if len(fields) > fcol:
        try:
            result.rejected.add(safe_relative_path(fields[fcol]))
        except ValueError:
            pass


def _check_csv_row(parsed: _Parsed, checker: _RowChecker, row: _Row, fields: list[str]) -> None:
    fcol, ccol = parsed.filename_col, parsed.caption_col
    width = len(parsed.header)
    needed = max(fcol, ccol) + 1
    if len(fields) < needed:
        checker.problem(
            row.start,
            f"row has {len(fields)} field{'s' if len(fields) != 1 else ''}, but the header "
            f"has {width} columns ({', '.join(h.strip() for h in parsed.header)})",
            f"put a {_sep_name(parsed.delimiter)} between the filename and the caption; "
            + _QUOTE_HINT,
        )
        _reject_name(parsed.result, fields, fcol)
        return
    caption = fields[ccol]
    extras = fields[width:]
    if any(e.strip() for e in extras):
        if ccol != width - 1:
            checker.problem(
                row.start,
                f"row has {len(fields)} fields, but the header has {width} columns",
                _QUOTE_HINT,
            )
            _reject_name(parsed.result, fields, fcol)
            return
        # The usual cause: an unquoted caption with commas. Keep the whole caption.
        caption = parsed.delimiter.join(fields[ccol:])
        checker.problem(
            row.start,
            f"row has {len(fields)} fields, but the header has {width} columns; the extra "
            "fields were read as part of the caption",
            _QUOTE_HINT + ", so that other tools read it the same way",
            severity="warning",
        )
    swallowed = _swallowed_row(caption)
    if swallowed is not None:
        at, text = swallowed
        checker.problem(
            row.start,
            f"the caption starting on line {row.start} runs over lines {row.start}-{row.end} "
            f"and contains what looks like another row ({text!r}); a closing double quote "
            "is probably missing",
            "add the missing closing double quote (\") at the end of the caption",
        )
        parsed.fatal = True
        _reject_name(parsed.result, fields, fcol)
        return
    key = checker.accept(row.start, fields[fcol], caption)
    if key is not None:
        row.key, row.caption, row.accepted = key, parsed.result.captions[key], True


def _sep_name(delimiter: str) -> str:
    return {",": "comma", ";": "semicolon", "\t": "tab"}[delimiter]


def _parse_jsonl(text: str, path: Path) -> _Parsed:
    result = CaptionReadResult(source=path)
    parsed = _Parsed(result=result, rows=[])
    checker = _RowChecker(path, result)
    keys_chosen = False
    # Split on "\n" only: JSON strings may hold U+2028 and friends, which splitlines() cuts.
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        row = _Row(number, number, raw + "\n", None, None, None, accepted=False)
        parsed.rows.append(row)
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            checker.problem(
                number, f"line is not valid JSON: {exc.msg} (column {exc.colno})",
                'each line must be one JSON object, like {"file_name": "img.png", "text": "a caption"}',
            )
            continue
        if not isinstance(obj, dict):
            checker.problem(
                number, f"line is a JSON {type(obj).__name__}, not an object",
                'each line must be one JSON object, like {"file_name": "img.png", "text": "a caption"}',
            )
            continue
        row.record = obj
        fkey = next((k for k in JSONL_FILENAME_KEYS if k in obj), None)
        ckey = next((k for k in JSONL_CAPTION_KEYS if k in obj), None)
        if not _jsonl_keys_ok(checker, number, obj, fkey, ckey):
            if fkey is not None and isinstance(obj[fkey], str):
                try:
                    result.rejected.add(safe_relative_path(obj[fkey]))
                except ValueError:
                    pass
            continue
        assert fkey is not None and ckey is not None
        if not keys_chosen:
            parsed.filename_key, parsed.caption_key, keys_chosen = fkey, ckey, True
        key = checker.accept(number, obj[fkey], obj[ckey])
        if key is not None:
            row.key, row.caption, row.accepted = key, result.captions[key], True
    return parsed


def _jsonl_keys_ok(
    checker: _RowChecker, line: int, obj: dict, fkey: str | None, ckey: str | None
) -> bool:
    example = 'like {"file_name": "img.png", "text": "a caption"}'
    if fkey is None:
        checker.problem(line, 'object has no "file_name" key', f"add the image's file name, {example}")
        return False
    if ckey is None:
        checker.problem(line, 'object has no "text" key', f"add the caption, {example}")
        return False
    for key in (fkey, ckey):
        if not isinstance(obj[key], str):
            checker.problem(
                line, f'"{key}" is {json.dumps(obj[key])}, not a string',
                f"write it as a string in double quotes, {example}",
            )
            return False
    return True


def _read_sidecars(
    folder: Path, images: Iterable[Path], caption_extension: str
) -> CaptionReadResult:
    ext = _check_caption_extension(caption_extension)
    result = CaptionReadResult()
    owner: dict[Path, Path] = {}
    for image in images:
        image = Path(image)
        key = image.relative_to(folder).as_posix()
        sidecar = image.with_suffix(ext)
        if sidecar in owner:
            result.problems.append(Problem(
                str(sidecar), None,
                f"is the caption file of both {owner[sidecar].name!r} and {image.name!r}",
                "rename one of the images (and its caption file) so each has its own",
                severity="warning",
            ))
        owner.setdefault(sidecar, image)
        try:
            data = sidecar.read_bytes()
        except FileNotFoundError:
            continue  # No caption: the scan reports it against the image.
        except OSError as exc:
            result.problems.append(Problem(
                str(sidecar), None, f"caption file cannot be read: {exc.strerror or exc}",
                "check that it is a readable file",
            ))
            result.rejected.add(key)
            continue
        try:
            result.captions[key] = data.decode("utf-8-sig").strip()
        except UnicodeDecodeError as exc:
            result.problems.append(Problem(
                str(sidecar), data[: exc.start].count(b"\n") + 1,
                f"caption file is not valid UTF-8 text (byte 0x{data[exc.start]:02x})",
                "open it in a text editor and save it as UTF-8",
            ))
            result.rejected.add(key)
    return result


# --------------------------------------------------------------------------------------
# Writing


def write_captions(
    folder: Path | str,
    captions: Mapping[str, str],
    fmt: CaptionFormat,
    metadata_path: Path | str | None = None,
    caption_extension: str = ".txt",
) -> None:
    """Write ``captions`` (the dataset's complete caption set) in ``fmt``, atomically.

    CSV/JSONL: rows of the existing file keep their order, extra columns/keys and, when
    their caption is unchanged, their exact text; rows for images no longer in
    ``captions`` and later duplicates are dropped; rows that could not be read are kept
    verbatim; new rows are appended sorted. A new CSV gets the header ``filename,prompt``.
    Raises :class:`CaptionFileError` when the existing file cannot be read safely (not
    UTF-8, no header, an unclosed quote), so nothing is silently overwritten.

    TXT: one sidecar per image, written only when its caption changed; sidecars of
    images missing from ``captions`` are left alone (never deleted).

    Every key must be a path inside ``folder`` (``ValueError`` otherwise).
    """
    folder = Path(folder)
    fmt = CaptionFormat(fmt)
    clean = {safe_relative_path(k): v.strip() for k, v in captions.items()}
    if fmt is CaptionFormat.TXT:
        _write_sidecars(folder, clean, caption_extension)
        return
    path = Path(metadata_path) if metadata_path is not None else default_metadata_path(folder, fmt)
    assert path is not None
    if not path.exists():
        text = _new_csv(clean) if fmt is CaptionFormat.CSV else _new_jsonl(clean)
        atomic_write_text(path, text)
        return
    existing, problem = _read_utf8(path, "metadata file")
    if problem is not None:
        raise CaptionFileError([problem])
    parsed = _parse_csv(existing, path) if fmt is CaptionFormat.CSV else _parse_jsonl(existing, path)
    if parsed.fatal:
        raise CaptionFileError(p for p in parsed.result.problems if p.is_error)
    if fmt is CaptionFormat.CSV and not parsed.header:
        atomic_write_text(path, _new_csv(clean))  # The file was empty.
        return
    atomic_write_text(path, _merge(parsed, clean, fmt))


def _csv_line(fields: list[str], delimiter: str = ",", newline: str = "\n") -> str:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator=newline).writerow(fields)
    return buffer.getvalue()


def _new_csv(captions: Mapping[str, str]) -> str:
    lines = [_csv_line([FILENAME_COLUMNS[0], CAPTION_COLUMNS[0]])]
    lines += [_csv_line([key, captions[key]]) for key in sorted(captions)]
    return "".join(lines)


def _jsonl_line(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False) + "\n"


def _new_jsonl(captions: Mapping[str, str], fkey: str = "file_name", ckey: str = "text") -> str:
    return "".join(_jsonl_line({fkey: key, ckey: captions[key]}) for key in sorted(captions))


def _merge(parsed: _Parsed, captions: Mapping[str, str], fmt: CaptionFormat) -> str:
    """The existing rows updated in place, then the new ones sorted."""
    out = [parsed.header_raw] if fmt is CaptionFormat.CSV else []
    written: set[str] = set()
    for row in parsed.rows:
        if not row.accepted:
            if row.key is None and _is_duplicate(row, parsed, fmt):
                continue  # A later duplicate: the reader ignored it, so does the file.
            out.append(row.raw)
            continue
        assert row.key is not None
        if row.key not in captions or row.key in written:
            continue
        written.add(row.key)
        if captions[row.key] == row.caption:
            out.append(row.raw)
        else:
            out.append(_updated_row(parsed, row, captions[row.key], fmt))
    new = sorted(k for k in captions if k not in written)
    for key in new:
        if fmt is CaptionFormat.CSV:
            fields = [""] * len(parsed.header)
            fields[parsed.filename_col], fields[parsed.caption_col] = key, captions[key]
            out.append(_csv_line(fields, parsed.delimiter, parsed.newline))
        else:
            out.append(_jsonl_line({parsed.filename_key: key, parsed.caption_key: captions[key]}))
    newline = parsed.newline if fmt is CaptionFormat.CSV else "\n"
    # A last line without its line ending must get one before anything follows it.
    return "".join(part if part.endswith(("\n", "\r")) else part + newline for part in out if part)


def _is_duplicate(row: _Row, parsed: _Parsed, fmt: CaptionFormat) -> bool:
    """True if a rejected row was rejected only for repeating an accepted row's file."""
    name: object = None
    if fmt is CaptionFormat.CSV and isinstance(row.record, list):
        if len(row.record) > max(parsed.filename_col, parsed.caption_col):
            name = row.record[parsed.filename_col]
    elif isinstance(row.record, dict):
        name = row.record.get(parsed.filename_key)
    if not isinstance(name, str):
        return False
    try:
        key = safe_relative_path(name)
    except ValueError:
        return False
    first = parsed.result.lines.get(key)
    return first is not None and first < row.start


def _updated_row(parsed: _Parsed, row: _Row, caption: str, fmt: CaptionFormat) -> str:
    if fmt is CaptionFormat.CSV:
        assert isinstance(row.record, list)
        # Pad short rows and drop the extra fields that were read as part of the caption.
        fields = (list(row.record) + [""] * len(parsed.header))[: len(parsed.header)]
        fields[parsed.caption_col] = caption
        return _csv_line(fields, parsed.delimiter, parsed.newline)
    assert isinstance(row.record, dict)
    obj = dict(row.record)
    ckey = next(k for k in JSONL_CAPTION_KEYS if k in obj)
    obj[ckey] = caption
    return _jsonl_line(obj)


def _write_sidecars(folder: Path, captions: Mapping[str, str], caption_extension: str) -> None:
    ext = _check_caption_extension(caption_extension)
    for key, caption in sorted(captions.items()):
        sidecar = (folder / key).with_suffix(ext)
        try:
            if sidecar.read_bytes().decode("utf-8-sig").strip() == caption:
                continue  # Unchanged: leave the file (and its modification time) alone.
        except (OSError, UnicodeDecodeError):
            pass  # Missing or unreadable: write it.
        atomic_write_text(sidecar, caption)


def convert_captions(
    folder: Path | str,
    src_fmt: CaptionFormat,
    dst_fmt: CaptionFormat,
    src_metadata_path: Path | str | None = None,
    dst_metadata_path: Path | str | None = None,
    caption_extension: str = ".txt",
) -> Path | None:
    """Read the captions in ``src_fmt`` and write them in ``dst_fmt``.

    Returns the written metadata file, or ``None`` for TXT sidecars. Raises
    :class:`CaptionFileError` if the source has errors, so a conversion never silently
    drops a caption.
    """
    result = load_captions(folder, src_fmt, src_metadata_path, caption_extension)
    errors = [p for p in result.problems if p.is_error]
    if errors:
        raise CaptionFileError(errors)
    dst_fmt = CaptionFormat(dst_fmt)
    target = (
        Path(dst_metadata_path) if dst_metadata_path is not None
        else default_metadata_path(folder, dst_fmt)
    )
    write_captions(folder, result.captions, dst_fmt, target, caption_extension)
    return target
