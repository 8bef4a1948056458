"""Decoding caption files the way they were written, so that they can be written back alike."""

from __future__ import annotations

from dataclasses import dataclass

BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class TextFormat:
    """How a text file was stored: encoding, BOM and newline style."""

    encoding: str = "utf-8"
    bom: bool = False
    newline: str = "\n"

    def encode(self, text: str) -> bytes:
        """Bytes of ``text`` in this format, always UTF-8.

        A file read as Windows-1252 is written back as UTF-8: the trainer (and most tools)
        read UTF-8 only, so keeping the legacy encoding would keep the dataset broken.
        The BOM and the newline style are kept as they were.
        """
        data = text.encode("utf-8")
        return (BOM + data) if self.bom else data


def first_bad_line(data: bytes) -> int:
    """1-based line number of the first byte that is not valid UTF-8."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return data.count(b"\n", 0, exc.start) + 1
    return 0


def decode(data: bytes) -> tuple[str, TextFormat, int]:
    """``(text, format, bad_line)``: UTF-8 (with or without BOM), else Windows-1252.

    ``bad_line`` is the first line with non-UTF-8 bytes (0 when the file is clean). Such a
    file is read as Windows-1252, the usual culprit (Excel on Windows); saving writes UTF-8.
    """
    bom = data.startswith(BOM)
    body = data[3:] if bom else data
    newline = "\r\n" if b"\r\n" in body[:65536] else "\n"
    try:
        return body.decode("utf-8"), TextFormat("utf-8", bom, newline), 0
    except UnicodeDecodeError:
        bad = first_bad_line(body)
        # latin-1 never fails; cp1252 has five undefined bytes.
        try:
            return body.decode("cp1252"), TextFormat("cp1252", bom, newline), bad
        except UnicodeDecodeError:
            return body.decode("latin-1"), TextFormat("latin-1", bom, newline), bad
