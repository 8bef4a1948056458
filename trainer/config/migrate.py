"""Bring configs written for older schema versions (or with other tools' key names) up to date.

Each entry of `_MIGRATIONS` turns version N into N+1 and says what it changed, so a user
who loads an old file is told what moved. Aliases (kohya's `network_dim`, ...) are renamed
to their option names here too.
"""

from __future__ import annotations

from typing import Any, Callable

from trainer.config.schema import ALIASES, SCHEMA_VERSION

Migration = Callable[[dict[str, Any]], list[str]]

# version -> function that upgrades a mapping of that version in place to version + 1.
_MIGRATIONS: dict[int, Migration] = {}


def rename_aliases(raw: dict[str, Any]) -> list[str]:
    """Rename alias keys to option names in place; returns one note per rename.

    An alias is left alone when the option's own key is also present: the validator then
    reports the alias as an unknown key, because silently picking one would lose a value.
    """
    notes = []
    for alias, name in ALIASES.items():
        if alias in raw and name not in raw:
            raw[name] = raw.pop(alias)
            notes.append(f"`{alias}` is called `{name}` here")
    return notes


def migrate(raw: dict[str, Any], version: int) -> list[str]:
    """Upgrade ``raw`` (in place) from schema ``version`` to the current one; returns notes."""
    notes: list[str] = []
    while version < SCHEMA_VERSION:
        notes += _MIGRATIONS[version](raw)
        version += 1
    notes += rename_aliases(raw)
    return notes
