"""Caption text as comma-separated tags, and the pure text operations of bulk edits.

Everything here is plain Python on strings so that it is fast over 10,000 captions,
easy to test, and shared by the bulk-edit dialog's preview and the undo commands.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

SEPARATOR = ", "


def split_tags(caption: str) -> list[str]:
    """Tags of a caption: split on commas, trimmed, empties dropped."""
    return [tag.strip() for tag in caption.split(",") if tag.strip()]


def join_tags(tags: Iterable[str]) -> str:
    """The caption text for a list of tags."""
    return SEPARATOR.join(tags)


def tag_counts(captions: Iterable[str]) -> Counter[str]:
    """How many captions contain each tag (a tag repeated in one caption counts once)."""
    counts: Counter[str] = Counter()
    for caption in captions:
        counts.update(set(split_tags(caption)))
    return counts


class Operation(str, Enum):
    """The bulk operations a user can run over a scope of images."""

    ADD_TAG = "add_tag"
    REMOVE_TAG = "remove_tag"
    PREPEND_TRIGGER = "prepend_trigger"
    REPLACE = "replace"
    SORT_TAGS = "sort_tags"
    DEDUPE_TAGS = "dedupe_tags"
    CLEAR = "clear"


@dataclass(frozen=True)
class BulkEdit:
    """One bulk operation with its arguments; ``apply`` maps an old caption to a new one."""

    operation: Operation
    text: str = ""
    replacement: str = ""
    regex: bool = False
    whole_tag: bool = False
    case_sensitive: bool = True

    def __post_init__(self) -> None:
        # Qt item data hands enums back as plain strings; normalise so `is` comparisons hold.
        object.__setattr__(self, "operation", Operation(self.operation))

    def describe(self) -> str:
        """Name for the undo stack, e.g. 'Replace “painting” with “oil painting”'."""
        op = self.operation
        if op is Operation.ADD_TAG:
            return f"Add tag “{self.text}”"
        if op is Operation.REMOVE_TAG:
            return f"Remove tag “{self.text}”"
        if op is Operation.PREPEND_TRIGGER:
            return f"Prepend trigger “{self.text}”"
        if op is Operation.REPLACE:
            kind = "regex " if self.regex else ""
            return f"Replace {kind}“{self.text}” with “{self.replacement}”"
        if op is Operation.SORT_TAGS:
            return "Sort tags"
        if op is Operation.DEDUPE_TAGS:
            return "Remove duplicate tags"
        return "Clear captions"

    def validate(self) -> str | None:
        """A message saying what is wrong with the arguments, or None when they are usable."""
        needs_text = {Operation.ADD_TAG, Operation.REMOVE_TAG, Operation.PREPEND_TRIGGER, Operation.REPLACE}
        if self.operation in needs_text and not self.text.strip():
            return "Enter the text to use."
        if self.operation in {Operation.ADD_TAG, Operation.PREPEND_TRIGGER} and "," in self.text:
            return "A tag cannot contain a comma; add one tag at a time."
        if self.operation is Operation.REPLACE and self.regex:
            try:
                re.compile(self.text)
            except re.error as exc:
                return f"The regular expression is not valid: {exc}."
        return None

    def compiler(self):
        """A function ``caption -> new caption`` with any regex compiled once."""
        op = self.operation
        text = self.text.strip() if op is not Operation.REPLACE else self.text
        if op is Operation.ADD_TAG:
            return lambda c: c if text in split_tags(c) else join_tags([*split_tags(c), text])
        if op is Operation.REMOVE_TAG:
            return lambda c: join_tags(t for t in split_tags(c) if t != text) if text in split_tags(c) else c
        if op is Operation.PREPEND_TRIGGER:
            def prepend(c: str) -> str:
                tags = split_tags(c)
                if tags[:1] == [text]:
                    return c
                return join_tags([text, *(t for t in tags if t != text)])
            return prepend
        if op is Operation.SORT_TAGS:
            return lambda c: join_tags(sorted(dict.fromkeys(split_tags(c)), key=str.casefold))
        if op is Operation.DEDUPE_TAGS:
            return lambda c: join_tags(dict.fromkeys(split_tags(c)))
        if op is Operation.CLEAR:
            return lambda c: ""
        return self._replacer()

    def _replacer(self):
        flags = 0 if self.case_sensitive else re.IGNORECASE
        pattern = re.compile(self.text if self.regex else re.escape(self.text), flags)
        # A plain replacement must not interpret backslashes as group references.
        repl = self.replacement if self.regex else self.replacement.replace("\\", "\\\\")
        if not self.whole_tag:
            def replace_text(c: str) -> str:
                return pattern.sub(repl, c) if pattern.search(c) else c
            return replace_text

        def replace_tags(c: str) -> str:
            tags = split_tags(c)
            changed = False
            out: list[str] = []
            for tag in tags:
                if pattern.fullmatch(tag):
                    new = pattern.sub(repl, tag).strip()
                    changed = True
                    if new:
                        out.append(new)
                else:
                    out.append(tag)
            return join_tags(out) if changed else c
        return replace_tags


def compute_changes(captions: dict[int, str], edit: BulkEdit) -> dict[int, tuple[str, str]]:
    """``{row: (old, new)}`` for the captions the edit would change; unchanged rows are left out.

    Storing only changed rows keeps an undo command's memory proportional to the change.
    """
    func = edit.compiler()
    changes: dict[int, tuple[str, str]] = {}
    for row, old in captions.items():
        new = func(old)
        if new != old:
            changes[row] = (old, new)
    return changes
