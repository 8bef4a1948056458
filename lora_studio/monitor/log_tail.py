"""Incremental reading of `train.log`: only new bytes, and only the last part of a huge log."""

from __future__ import annotations

import os
from pathlib import Path

FIRST_READ_BYTES = 1 << 20  # a 100 MB log opens with its last megabyte


class LogTail:
    """New text of a growing log file since the last call."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.offset: int | None = None
        self._pending = b""
        self.bytes_read = 0

    def read_new(self) -> str:
        """Complete new lines ('' when none); a line still being written waits for its newline."""
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return ""
        if self.offset is None or size < self.offset:
            self.offset = max(0, size - FIRST_READ_BYTES)  # first read, or the log was replaced
            self._pending = b""
            skip_partial = self.offset > 0
        else:
            skip_partial = False
        if size == self.offset:
            self.bytes_read = 0
            return ""
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read(size - self.offset)
        self.bytes_read = len(chunk)
        self.offset += len(chunk)
        data = self._pending + chunk
        if skip_partial:
            data = data[data.find(b"\n") + 1:]  # we started mid-line
        end = data.rfind(b"\n")
        if end < 0:
            self._pending = data
            return ""
        self._pending = data[end + 1:]
        return data[:end].decode("utf-8", errors="replace")
