"""Problems found in a dataset, phrased for a person: where, what, and what to do."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path


class Severity(str, Enum):
    """How bad a problem is: errors block or skip something, warnings inform."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One problem, naming the file (and line when there is one) and the fix."""

    path: Path
    line: int | None
    message: str
    hint: str = ""
    severity: Severity = Severity.WARNING

    @property
    def location(self) -> str:
        """``file`` or ``file:line`` as shown to the user."""
        return f"{self.path.name}:{self.line}" if self.line else self.path.name

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}"
        return f"{text} {self.hint}" if self.hint else text
