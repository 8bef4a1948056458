"""Change a YAML config's values without losing its comments, order or layout (torch-free).

A user's config is a document: comments explain choices, the key order tells a story.
Re-dumping it from a dict would throw all of that away. Instead, only the lines of the keys
whose values changed are rewritten (keeping a trailing comment on the key's line), removed
keys lose their lines, and new keys are appended. Unchanged text stays byte for byte.
Configs are flat mappings of options, which is all this handles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import yaml


@dataclass
class _Span:
    key: str
    first: int  # first line (0-based) of the key
    last: int  # last line (inclusive) of its value
    value: Any
    comment: str  # a trailing "# ..." on the key's line when the value sat on that line


def render_entry(key: str, value: Any) -> list[str]:
    """`key: value` as YAML lines (block style for lists)."""
    text = yaml.safe_dump({key: value}, sort_keys=False, allow_unicode=True, default_flow_style=False, width=10_000)
    return text.rstrip("\n").split("\n")


def _spans(text: str) -> list[_Span] | None:
    """Where each top-level key lives; None when the text is not a flat YAML mapping."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if node is None:
        return []
    if not isinstance(node, yaml.MappingNode) or not isinstance(data, dict):
        return None
    lines = text.split("\n")
    spans = []
    for key_node, value_node in node.value:
        first = key_node.start_mark.line
        end = value_node.end_mark
        # A block value ends at column 0 of the line after it.
        last = end.line - 1 if end.column == 0 and end.line > first else end.line
        comment = ""
        if last == first:
            rest = lines[first][end.column:]
            hash_at = rest.find("#")
            if hash_at >= 0 and rest[:hash_at].strip() == "":
                comment = rest[hash_at:].rstrip()
        spans.append(_Span(str(key_node.value), first, last, data.get(key_node.value), comment))
    return spans


def update_yaml_text(text: str, values: Mapping[str, Any]) -> str:
    """``text`` with its top-level keys set to ``values`` (keys absent from ``values`` removed).

    Falls back to a plain dump when ``text`` is empty or not a flat mapping.
    """
    spans = _spans(text)
    if spans is None or not text.strip():
        return "\n".join(line for key, value in values.items() for line in render_entry(key, value)) + "\n"
    lines = text.split("\n")
    present = {span.key for span in spans}
    # Work from the bottom up so that earlier line numbers stay valid.
    for span in reversed(spans):
        if span.key not in values:
            del lines[span.first:span.last + 1]
        elif values[span.key] != span.value or type(values[span.key]) is not type(span.value):
            new = render_entry(span.key, values[span.key])
            if span.comment and len(new) == 1:
                new[0] = f"{new[0]}  {span.comment}"
            lines[span.first:span.last + 1] = new
    added = [line for key, value in values.items() if key not in present for line in render_entry(key, value)]
    if added:
        while lines and lines[-1] == "":
            lines.pop()
        lines += added + [""]
    return "\n".join(lines)
