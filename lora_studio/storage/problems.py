"""Problems found in a dataset, phrased for a person: where, what, and what to do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trainer.problems import Problem as TrainerProblem


@dataclass(frozen=True)
class Problem(TrainerProblem):
    """One problem, naming the file (and line when there is one) and the fix.

    The trainer's problem, as the app shows it: ``path`` is a :class:`~pathlib.Path`, the
    text names the file alone (the panel's tooltip has the full path), and message and
    hint are sentences of their own.
    """

    path: Path

    @property
    def location(self) -> str:
        """``file`` or ``file:line`` as shown to the user."""
        return f"{self.path.name}:{self.line}" if self.line else self.path.name

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}"
        return f"{text} {self.hint}" if self.hint else text
