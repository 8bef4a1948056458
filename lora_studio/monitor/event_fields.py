"""Reading a field of a run's event (events.jsonl, docs/trainer.md) that must be a whole number.

The trainer writes them, but a run folder is a user's to copy, merge and edit: a field that is not
a number is left out by whoever reads it, instead of raising on the UI thread and dropping the other
events that arrived with it.
"""

from __future__ import annotations


def event_int(event: dict, key: str) -> int | None:
    """``event[key]`` as a whole number (``step``, ``prompt_index``), or None when it is missing or is not one."""
    value = event.get(key)
    if isinstance(value, bool):
        return None  # JSON's true is not a step
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None
