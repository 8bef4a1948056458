"""Caption files as text: decoding them, and remembering how they were stored.

The trainer reads UTF-8 only (a BOM is accepted) and refuses anything else with the line
of the first bad byte. An editor (``lenient=True``) reads a legacy file as Windows-1252,
the usual culprit (Excel on Windows), and warns; saving then writes UTF-8, because keeping
the legacy encoding would keep the dataset unreadable for the trainer. The BOM and the
newline style are remembered so that a save keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .problems import Problem

BOM = b"\xef\xbb\xbf"
SAVE_AS_UTF8_HINT = (
    "open it in a text editor and save it as UTF-8 (in Excel: File > Save As > 'CSV UTF-8')"
)


@dataclass(frozen=True)
class TextFormat:
    """How a text file was stored: encoding it was read with, BOM and newline style."""

    encoding: str = "utf-8"
    bom: bool = False
    newline: str = "\n"

    def encode(self, text: str) -> bytes:
        """Bytes of ``text`` in this format: always UTF-8, with the BOM if the file had one."""
        data = text.encode("utf-8")
        return (BOM + data) if self.bom else data


def _newline_of(body: bytes) -> str:
    return "\r\n" if b"\r\n" in body[:65536] else "\n"


def decode_text(
    data: bytes, path: Path | str, what: str, lenient: bool = False
) -> tuple[str, TextFormat, Problem | None]:
    """``(text, format, problem)`` for a file's bytes.

    Strict: text that is not UTF-8 gives ``("", format, error)``. Lenient: it is read as
    Windows-1252 (or Latin-1) and the problem is a warning saying the save will fix it.
    """
    bom = data.startswith(BOM)
    body = data[len(BOM):] if bom else data
    try:
        return body.decode("utf-8"), TextFormat("utf-8", bom, _newline_of(body)), None
    except UnicodeDecodeError as exc:
        # Count in ``data`` so that the line number is the file's own.
        bad = exc.start + (len(BOM) if bom else 0)
        line = data[:bad].count(b"\n") + 1
        byte = data[bad]
    if not lenient:
        problem = Problem(
            str(path), line,
            f"is not valid UTF-8 text (byte 0x{byte:02x} cannot be decoded)",
            SAVE_AS_UTF8_HINT,
        )
        return "", TextFormat("utf-8", bom, _newline_of(body)), problem
    for encoding in ("cp1252", "latin-1"):  # latin-1 decodes any byte; cp1252 lacks five
        try:
            text = body.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    problem = Problem(
        str(path), line, f"is not UTF-8 text; read as {encoding}",
        "the next save writes it as UTF-8, which the trainer needs", severity="warning",
    )
    return text, TextFormat(encoding, bom, _newline_of(body)), problem


def read_text(
    path: Path, what: str, lenient: bool = False
) -> tuple[str, TextFormat, Problem | None]:
    """Read and decode a caption file; the problem says why it cannot be read, if so.

    When reading fails the text is ``""`` and the problem is an error.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return "", TextFormat(), Problem(
            str(path), None, f"{what} does not exist",
            "check the path (metadata_path in the config), or remove it to use .txt "
            "caption files next to the images",
        )
    except IsADirectoryError:
        return "", TextFormat(), Problem(str(path), None, f"{what} is a folder, not a file", "point to the file")
    except OSError as exc:
        return "", TextFormat(), Problem(
            str(path), None, f"{what} cannot be read: {exc.strerror or exc}",
            "check that the file is readable by this user",
        )
    return decode_text(data, path, what, lenient)
