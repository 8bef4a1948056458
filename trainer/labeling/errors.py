"""Errors of the ``label`` command, each with what to do (torch-free)."""

from __future__ import annotations

from trainer.problems import ExplainedError


class LabelInputError(ExplainedError):
    """Bad input (options, dataset, model folder): exit code 2, nothing is written."""

    def __init__(self, message: str, hint: str, path: str | None = None, line: int | None = None) -> None:
        super().__init__(message, hint)
        self.path = path
        self.line = line

    def __str__(self) -> str:
        # The command prints each of several input errors as one line: where, what, what to do.
        where = ""
        if self.path:
            where = f"{self.path}:{self.line}: " if self.line else f"{self.path}: "
        return f"{where}{self.explained()}"


class LabelInputErrors(Exception):
    """Several input problems found at once: all of them are printed."""

    def __init__(self, problems: list[LabelInputError]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class LabelFailure(ExplainedError):
    """The job failed while running (model error, out of memory at batch size 1): exit code 1."""

    def __str__(self) -> str:
        return self.explained()  # what reaches a log through str() says what to do too
