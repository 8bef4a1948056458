"""The one error type that model loading raises for anything the user can fix."""

from __future__ import annotations

from trainer.problems import ExplainedError


class ModelLoadError(ExplainedError):
    """A base model could not be loaded, said in words a user can act on.

    ``message`` says what is wrong (and names the file); ``hint`` says what to do about
    it, or is empty. ``str(error)`` is the message alone, so that callers that only
    print the exception still print something sensible.
    """
