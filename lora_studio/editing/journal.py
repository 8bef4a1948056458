"""The edit journal: every caption change is appended and fsynced before anything else.

If the app is killed between an edit and the next save, the journal still has the edit;
opening the dataset again replays it, saves, and removes the journal. Journals live on
the local disk (not on the shared dataset folder), one per dataset, named by a hash of
the folder's path.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..paths import journal_dir

VERSION = 1


def journal_path(root: Path) -> Path:
    """The journal file of the dataset at ``root``."""
    digest = hashlib.sha1(str(Path(root).resolve()).encode("utf-8")).hexdigest()[:16]
    return journal_dir() / f"{digest}.jsonl"


@dataclass
class Recovered:
    """Edits found in a journal: ``{rel: (caption before the edits, caption after)}``."""

    root: Path
    changes: dict[str, tuple[str, str]] = field(default_factory=dict)


class Journal:
    """Append-only log of caption edits for one dataset."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.path = journal_path(self.root)
        self._handle = None

    def append(self, changes: dict[str, tuple[str, str]]) -> None:
        """Record ``{rel: (base, new)}`` durably (flush + fsync) before returning."""
        if not changes:
            return
        if self._handle is None:
            new = not self.path.exists() or self.path.stat().st_size == 0
            self._handle = open(self.path, "a", encoding="utf-8")
            if new:
                self._handle.write(json.dumps({"v": VERSION, "root": str(self.root.resolve())}) + "\n")
        line = json.dumps({"c": {rel: [base, new] for rel, (base, new) in changes.items()}}, ensure_ascii=False)
        self._handle.write(line + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def clear(self) -> None:
        """Forget the journal: everything in it is now saved in the caption files."""
        self.close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def close(self) -> None:
        """Close the file (the journal stays on disk)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    @staticmethod
    def read(root: Path) -> Recovered | None:
        """Edits left by a previous session of ``root``; None when there are none.

        A half-written last line (the app died mid-write) is skipped. For each caption
        the first recorded base and the last recorded value are kept.
        """
        path = journal_path(root)
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
        except FileNotFoundError:
            return None
        recovered = Recovered(Path(root))
        for line in lines[1:]:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            for rel, (base, new) in record.get("c", {}).items():
                first_base = recovered.changes.get(rel, (base, new))[0]
                recovered.changes[rel] = (first_base, new)
        recovered.changes = {rel: bn for rel, bn in recovered.changes.items() if bn[0] != bn[1]}
        return recovered if recovered.changes else None
