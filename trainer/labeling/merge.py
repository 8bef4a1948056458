"""How a generated caption is combined with the caption an image already has (torch-free).

The modes are the ones the app offers:

- ``fill``: caption only images that have no caption (or an empty one); the default, because
  it can never overwrite a caption someone wrote by hand;
- ``append`` / ``prepend``: keep the existing caption and add the generated text after / before
  it, leaving out tags the caption already has;
- ``replace``: the generated caption replaces the existing one.

A trigger word, when given, is put first and never twice. Parts are joined with ``", "`` (kohya's
tag separator, also fine between a sentence and tags).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence

SEPARATOR = ", "


class Mode(str, enum.Enum):
    """What to do with images that already have a caption."""

    FILL = "fill"
    APPEND = "append"
    PREPEND = "prepend"
    REPLACE = "replace"


MODE_HELP: dict[str, str] = {
    Mode.FILL.value: "caption only images without a caption (never touches existing captions)",
    Mode.APPEND.value: "add the generated caption after the existing one",
    Mode.PREPEND.value: "add the generated caption before the existing one",
    Mode.REPLACE.value: "replace existing captions with the generated ones",
}


def split_parts(caption: str | None) -> list[str]:
    """A caption's comma-separated parts, stripped, empty ones dropped."""
    if not caption:
        return []
    return [part.strip() for part in caption.split(",") if part.strip()]


def tag_key(part: str) -> str:
    """How tags compare: without case, underscores as spaces ("long_hair" == "Long hair")."""
    return " ".join(part.replace("_", " ").lower().split())


def _unique(parts: Iterable[str], seen: set[str]) -> list[str]:
    out = []
    for part in parts:
        key = tag_key(part)
        if key and key not in seen:
            seen.add(key)
            out.append(part)
    return out


def needs_caption(existing: str | None, mode: Mode | str) -> bool:
    """True when an image with this caption is to be captioned in ``mode``."""
    return Mode(mode) is not Mode.FILL or not (existing or "").strip()


def merge_caption(
    existing: str | None,
    generated: Sequence[str],
    mode: Mode | str,
    trigger: str | None = None,
) -> str | None:
    """The image's new caption, or ``None`` when it keeps the one it has.

    ``generated`` is the model's output as parts: one sentence for a captioner, tags for a
    tagger. Existing captions are kept word for word in ``append``/``prepend``: only parts
    they do not already contain are added, and the trigger word is moved to the front
    only if it is missing (then it is added, never moved).
    """
    mode = Mode(mode)
    old = (existing or "").strip()
    if mode is Mode.FILL and old:
        return None
    trigger = (trigger or "").strip()
    gen = [g.strip() for g in generated if g and g.strip()]
    if mode in (Mode.FILL, Mode.REPLACE) or not old:
        seen: set[str] = set()
        parts = _unique([trigger] if trigger else [], seen) + _unique(gen, seen)
        return SEPARATOR.join(parts)
    old_parts = split_parts(old)
    seen = {tag_key(p) for p in old_parts}
    added = _unique(gen, seen)
    if not added and (not trigger or tag_key(trigger) in seen):
        return old
    lead = [] if not trigger or tag_key(trigger) in seen else [trigger]
    if mode is Mode.APPEND:
        pieces = lead + ([old] if old else []) + added
    else:  # PREPEND: the trigger still leads, then the new text, then the old caption.
        if old_parts and trigger and tag_key(old_parts[0]) == tag_key(trigger):
            # The old caption starts with the trigger: keep it in front of the new text.
            rest = old[len(old_parts[0]):].lstrip(" ,")
            pieces = [old_parts[0]] + added + ([rest] if rest else [])
        else:
            pieces = lead + added + [old]
    return SEPARATOR.join(pieces)
