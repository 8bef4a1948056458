"""The one vocabulary for things a user can fix: what is wrong, and what to do (torch-free).

Two shapes, used by the trainer and the app alike (this module imports only the standard
library, so the app may import it):

- :class:`ExplainedError` is *raised*: a failure that stops what was being done, with a
  ``message`` (what is wrong) and a ``hint`` (what to do about it);
- :class:`Problem` is *collected*: one of the findings of a check (config, dataset, caption
  files), with where it is and how bad it is, so that all of them can be shown at once.

Subclasses keep their own names (callers catch and build them by name) and add only their
own fields and, where their text has always read differently, their own ``__str__``.
"""

from __future__ import annotations

from dataclasses import dataclass

# How bad a problem is: errors stop training (or the save), warnings and notes only inform.
SEVERITIES = ("error", "warning", "info")


class ExplainedError(Exception):
    """A failure said so that a user can act on it: ``message`` and ``hint`` (may be empty).

    ``str(error)`` is the message alone, so that code that only prints the exception still
    prints something sensible; :meth:`explained` adds the hint in the form the command
    lines print.
    """

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def explained(self) -> str:
        """``"message (hint)"``, or the message alone when there is no hint."""
        return f"{self.message} ({self.hint})" if self.hint else self.message


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, said so that a user can fix it.

    ``path`` is the file (or folder) concerned and ``line`` its line when known: where;
    ``message`` is what is wrong, ``hint`` what to do; ``severity`` one of
    :data:`SEVERITIES`. This class is the caption readers' and the dataset scan's own.
    """

    path: str
    line: int | None
    message: str
    hint: str
    severity: str = "error"

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message} — {self.hint}"

    @property
    def is_error(self) -> bool:
        """True for problems that stop training (warnings and notes do not)."""
        return self.severity == "error"
