"""Errors of the ``label`` command, each with what to do (torch-free)."""

from __future__ import annotations


class LabelInputError(Exception):
    """Bad input (options, dataset, model folder): exit code 2, nothing is written."""

    def __init__(self, message: str, hint: str, path: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.hint = hint
        self.path = path
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.path:
            where = f"{self.path}:{self.line}: " if self.line else f"{self.path}: "
        return f"{where}{self.message} ({self.hint})"


class LabelInputErrors(Exception):
    """Several input problems found at once: all of them are printed."""

    def __init__(self, problems: list[LabelInputError]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class LabelFailure(Exception):
    """The job failed while running (model error, out of memory at batch size 1): exit code 1."""

    def __init__(self, message: str, hint: str) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} ({hint})")
