"""The texts a person edits in a text-dataset row: system prompt, each turn, and where each lives.

A row is kept as the JSON object read from the file, unknown keys and their order included;
the editor changes it only through :func:`with_text`, which replaces one string at one
path and leaves everything else as it was. :func:`row_fields` lists the editable strings
of a row in conversation order, leniently (a row with roles out of order still shows
its messages, so that it can be fixed here). Plain Python, no Qt.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from trainer.llm.rows import OPENAI_ROLES, SHAREGPT_ROLES

Path = tuple[str | int, ...]
CHAT_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Field:
    """One editable string of a row.

    ``role`` is what it is in the conversation (``system``, ``user``, ``assistant``; alpaca's
    ``input``, which joins the instruction; ``text`` for plain-text rows); ``label`` what the
    editor calls it ("User 2", "Input"); ``path`` the keys from the row to the string.
    """

    role: str
    label: str
    path: Path
    text: str


def row_fields(row: object, fmt: str) -> list[Field]:
    """The editable strings of ``row`` (a row of format ``fmt``), in conversation order."""
    if not isinstance(row, dict):
        return []
    if fmt == "text":
        return _strings(row, [("text", "Text", ("text",))])
    if fmt == "alpaca":
        return _alpaca(row)
    if fmt in ("sharegpt", "openai"):
        return _messages(row, fmt)
    return []


def _strings(row: dict, wanted: list[tuple[str, str, Path]]) -> list[Field]:
    """The fields among ``wanted`` (role, label, path) whose value is a string."""
    fields = []
    for role, label, path in wanted:
        value = _get(row, path)
        if isinstance(value, str):
            fields.append(Field(role, label, path, value))
    return fields


def _alpaca(row: dict) -> list[Field]:
    wanted: list[tuple[str, str, Path]] = [("system", "System", ("system",))]
    history = row.get("history")
    if isinstance(history, list):
        for number, pair in enumerate(history, start=1):
            if isinstance(pair, list) and len(pair) == 2:
                wanted += [("user", f"User {number}", ("history", number - 1, 0)),
                           ("assistant", f"Assistant {number}", ("history", number - 1, 1))]
    last = len(history) + 1 if isinstance(history, list) else 1
    wanted += [("user", f"User {last} (instruction)", ("instruction",)), ("input", "Input", ("input",)),
               ("assistant", f"Assistant {last} (output)", ("output",))]
    return _strings(row, wanted)


def _messages(row: dict, fmt: str) -> list[Field]:
    key, role_key, content_key, roles = (("conversations", "from", "value", SHAREGPT_ROLES) if fmt == "sharegpt"
                                         else ("messages", "role", "content", OPENAI_ROLES))
    wanted: list[tuple[str, str, Path]] = [("system", "System", ("system",))] if fmt == "sharegpt" else []
    messages = row.get(key)
    counts = {"user": 0, "assistant": 0}
    for index, message in enumerate(messages if isinstance(messages, list) else []):
        if not isinstance(message, dict):
            continue
        role = roles.get(message.get(role_key)) if isinstance(message.get(role_key), str) else None
        if role in counts:
            counts[role] += 1
            label = f"{role.capitalize()} {counts[role]}"
        elif role == "system":
            label = "System"
        else:
            role, label = "unknown", f"Message {index + 1} ({message.get(role_key)!s:.20})"
        wanted.append((role, label, (key, index, content_key)))
    return _strings(row, wanted)


def _get(row: object, path: Path) -> object:
    for key in path:
        if isinstance(key, int):
            if not isinstance(row, list) or not 0 <= key < len(row):
                return None
        elif not isinstance(row, dict) or key not in row:
            return None
        row = row[key]
    return row


def with_text(row: dict, path: Path, text: str) -> dict:
    """A copy of ``row`` with the string at ``path`` replaced by ``text`` (nothing else changes).

    A missing last key is added at the end of its object (a system prompt added to a row
    that had none); the rest of the row keeps its keys in their order.
    """
    new = copy.deepcopy(row)
    target = new
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = text
    return new


def system_path(row: object, fmt: str) -> Path | None:
    """Where a system prompt goes in a row that has none (None for rows that take none here)."""
    if not isinstance(row, dict) or fmt not in ("alpaca", "sharegpt"):
        return None  # OpenAI rows take a system *message*: added with add_system_message
    return ("system",)


def add_system_message(row: dict, text: str) -> dict:
    """A copy of an OpenAI row with a system message first."""
    new = copy.deepcopy(row)
    new["messages"] = [{"role": "system", "content": text}, *new.get("messages", [])]
    return new


def chat_preview(fields: list[Field]) -> tuple[str, str, str, int]:
    """(system, first user text, first assistant text, number of user and assistant turns) of a row.

    Alpaca's input joins its instruction with a newline, as the trainer joins them.
    """
    system = next((f.text for f in fields if f.role == "system"), "")
    user = next((f.text for f in fields if f.role in ("user", "text")), "")
    first_user = next((i for i, f in enumerate(fields) if f.role == "user"), None)
    if first_user is not None and first_user + 1 < len(fields) and fields[first_user + 1].role == "input" \
            and fields[first_user + 1].text:
        user = f"{user}\n{fields[first_user + 1].text}" if user else fields[first_user + 1].text
    assistant = next((f.text for f in fields if f.role == "assistant"), "")
    turns = sum(f.role in ("user", "assistant") for f in fields)
    return system, user, assistant, turns
