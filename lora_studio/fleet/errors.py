"""The queue's errors: each says what went wrong with a queued run and what to do about it."""

from __future__ import annotations

from trainer.problems import ExplainedError


class QueueError(ExplainedError):
    """A queue operation could not be done; ``hint`` says what the user can do."""

    def __str__(self) -> str:
        return self.explained()  # a worker passes str(error) on to the dialog: the hint belongs there
