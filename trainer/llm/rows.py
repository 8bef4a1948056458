"""One dataset row (a JSON object) checked and normalised into turns (torch-free).

:func:`row_format` says which of the four row shapes an object has (from its keys), and
:func:`check_row` checks it as that shape and returns its system prompt and turns (or its
text), or the list of everything wrong with it. Positions inside a row ("message 3",
"history pair 2") are 1-based, as a person counts; the file and line are added by
:mod:`trainer.llm.formats`, which is the module callers use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

ROW_FORMATS: tuple[str, ...] = ("alpaca", "sharegpt", "openai", "text")
# The key that identifies each shape, in the order detection tries them: a row that has
# "messages" is OpenAI-style even if it also carries a "text" key for display.
FORMAT_KEYS: tuple[tuple[str, str], ...] = (
    ("openai", "messages"), ("sharegpt", "conversations"), ("alpaca", "instruction"), ("text", "text"),
)
ROW_EXAMPLES: dict[str, str] = {
    "alpaca": '{"instruction": "...", "input": "", "output": "..."}',
    "sharegpt": '{"conversations": [{"from": "human", "value": "..."}, {"from": "gpt", "value": "..."}]}',
    "openai": '{"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}',
    "text": '{"text": "..."}',
}
# sharegpt's speaker names; "user"/"assistant" are accepted there as well, as LLaMA-Factory does.
SHAREGPT_ROLES: dict[str, str] = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                                  "system": "system"}
OPENAI_ROLES: dict[str, str] = {"user": "user", "assistant": "assistant", "system": "system"}
ORDER_HINT = ("after an optional system message first, messages must alternate user, assistant, user, ... "
              "and end with the assistant's answer")

# (message, hint): what is wrong with a row, and what to do about it.
Issue = tuple[str, str]


@dataclass(frozen=True)
class Turn:
    """One message of a conversation: ``role`` is ``"user"`` or ``"assistant"``."""

    role: str
    content: str


@dataclass
class CheckedRow:
    """What a valid row holds: a chat (``system`` and ``turns``) or, for text rows, ``text``."""

    system: str | None = None
    turns: list[Turn] | None = None
    text: str | None = None
    # The row's own number of the first turn: 2 when a system message came before it.
    first: int = 1


def row_format(obj: dict) -> str | None:
    """The row shape an object's keys say (one of :data:`ROW_FORMATS`), or ``None``."""
    for fmt, key in FORMAT_KEYS:
        if key in obj:
            return fmt
    # An alpaca row that lost its instruction is still an alpaca row (with a missing field).
    return "alpaca" if "output" in obj else None


def check_row(obj: dict, fmt: str) -> tuple[CheckedRow | None, list[Issue]]:
    """Check ``obj`` as a row of ``fmt``: ``(row, [])`` when valid, else ``(None, issues)``."""
    issues: list[Issue] = []
    row = _CHECKERS[fmt](obj, issues)
    if row is not None and row.turns is not None:
        _check_conversation(row, issues, fmt)
    return (None, issues) if issues else (row, [])


def describe(value: object) -> str:
    """A short JSON rendering of a value for messages (long values are cut)."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def json_type(value: object) -> str:
    """``"a list"``, ``"an object"``, ...: a JSON value's type, as a message says it."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}
    return names.get(type(value), "a number")


def _string(obj: dict, key: str, issues: list[Issue], fmt: str, required: bool) -> str | None:
    """``obj[key]`` when it is a string; ``None`` when absent or null and optional."""
    if key not in obj or (obj[key] is None and not required):
        if required:
            issues.append((f'missing field "{key}"', f'add "{key}" to the row, like {ROW_EXAMPLES[fmt]}'))
        return None
    value = obj[key]
    if not isinstance(value, str):
        issues.append((f'"{key}" is {describe(value)}, not a string',
                       f"write it as a string in double quotes, like {ROW_EXAMPLES[fmt]}"))
        return None
    return value


def _system(value: str | None) -> str | None:
    # An empty system prompt ("system": "" is common in exported alpaca sets) means none.
    return value if value and value.strip() else None


def _alpaca(obj: dict, issues: list[Issue]) -> CheckedRow | None:
    instruction = _string(obj, "instruction", issues, "alpaca", required=True)
    extra = _string(obj, "input", issues, "alpaca", required=False)
    output = _string(obj, "output", issues, "alpaca", required=True)
    system = _string(obj, "system", issues, "alpaca", required=False)
    turns = _alpaca_history(obj.get("history"), issues)
    if instruction is None or output is None:
        return None
    # Instruction and input join with a newline, as LLaMA-Factory does, so that a dataset
    # moved from there trains on the same text.
    prompt = f"{instruction}\n{extra}" if extra and instruction else (instruction or extra or "")
    turns += [Turn("user", prompt), Turn("assistant", output)]
    return CheckedRow(system=_system(system), turns=turns)


def _alpaca_history(history: object, issues: list[Issue]) -> list[Turn]:
    if history is None:
        return []
    hint = 'write "history" as a list of [question, answer] pairs, like [["Hi", "Hello!"]]'
    if not isinstance(history, list):
        issues.append((f'"history" is {json_type(history)}, not a list', hint))
        return []
    turns: list[Turn] = []
    for number, pair in enumerate(history, start=1):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
            issues.append((f"history pair {number} is {describe(pair)}, not a [question, answer] pair of strings",
                           hint))
            continue
        turns += [Turn("user", pair[0]), Turn("assistant", pair[1])]
    return turns


def _sharegpt(obj: dict, issues: list[Issue]) -> CheckedRow | None:
    system = _string(obj, "system", issues, "sharegpt", required=False)
    return _message_list(obj, issues, "sharegpt", "conversations", ("from", "value"), SHAREGPT_ROLES, system)


def _openai(obj: dict, issues: list[Issue]) -> CheckedRow | None:
    return _message_list(obj, issues, "openai", "messages", ("role", "content"), OPENAI_ROLES, None)


def _message_list(obj: dict, issues: list[Issue], fmt: str, key: str, fields: tuple[str, str],
                  roles: dict[str, str], system: str | None) -> CheckedRow | None:
    """sharegpt and OpenAI rows: a list of ``{role, content}`` objects under their own names."""
    role_key, content_key = fields
    messages = obj[key]
    if not isinstance(messages, list):
        issues.append((f'"{key}" is {json_type(messages)}, not a list',
                       f"write it as a list, like {ROW_EXAMPLES[fmt]}"))
        return None
    before = len(issues)
    turns: list[Turn] = []
    for number, message in enumerate(messages, start=1):
        shape_hint = f'each message is an object with "{role_key}" and "{content_key}", like {ROW_EXAMPLES[fmt]}'
        if not isinstance(message, dict):
            issues.append((f"message {number} is {json_type(message)}, not an object", shape_hint))
            continue
        missing = [f for f in fields if f not in message]
        if missing:
            issues.append((f'message {number} has no "{missing[0]}" field', shape_hint))
            continue
        role, content = message[role_key], message[content_key]
        if not isinstance(role, str) or role not in roles:
            issues.append((f'message {number} has the unknown role {describe(role)}',
                           f'"{role_key}" must be one of {", ".join(roles)} (tool and function calls are not '
                           "supported: remove those messages)"))
            continue
        if not isinstance(content, str):
            issues.append((f'message {number}\'s "{content_key}" is {json_type(content)}, not a string',
                           "write the message's text as one string"))
            continue
        turns.append(Turn(roles[role], content))
    if len(issues) > before:
        return None
    if turns and turns[0].role == "system":
        if system is not None:
            issues.append(('the row has both a "system" field and a system message',
                           "keep one of the two system prompts"))
            return None
        system = turns.pop(0).content
        return CheckedRow(system=_system(system), turns=turns, first=2)
    return CheckedRow(system=_system(system), turns=turns)


def _text(obj: dict, issues: list[Issue]) -> CheckedRow | None:
    text = _string(obj, "text", issues, "text", required=True)
    if text is not None and not text.strip():
        issues.append(('"text" is empty', "write the text, or delete the row"))
        return None
    return None if text is None else CheckedRow(text=text)


def _check_conversation(row: CheckedRow, issues: list[Issue], fmt: str) -> None:
    """The order and emptiness checks every chat shape shares (alpaca's order is its structure)."""
    turns = row.turns or []
    if not turns:
        issues.append(("the conversation has no user or assistant messages", f"like {ROW_EXAMPLES[fmt]}"))
        return
    for index, turn in enumerate(turns):
        expected = "user" if index % 2 == 0 else "assistant"
        if turn.role != expected:
            what = "a system message, which can only come first" if turn.role == "system" else f'"{turn.role}"'
            issues.append((f'roles out of order: message {index + row.first} is {what}, where "{expected}" should come',
                           ORDER_HINT))
            return
    if turns[-1].role != "assistant":
        issues.append((f"the conversation ends with {_where(row, fmt, len(turns) - 1)}, not with an answer",
                       "add the assistant's answer at the end, or delete the last message"))
        return
    for index, turn in enumerate(turns):
        if turn.content.strip():
            continue
        if turn.role == "assistant":
            issues.append((f"empty answer: {_where(row, fmt, index)} is empty",
                           "write the answer, or delete the row (an empty answer trains the model to say nothing)"))
        else:
            issues.append((f"empty prompt: {_where(row, fmt, index)} is empty",
                           "write the question, or delete the row"))


def _where(row: CheckedRow, fmt: str, index: int) -> str:
    """Where turn ``index`` is, in the row's own terms ("message 3 (user)", "history pair 2's answer")."""
    turns = row.turns or []
    if fmt != "alpaca":
        return f"message {index + row.first} ({turns[index].role})"
    if index >= len(turns) - 2:
        return '"output"' if index % 2 else '"instruction" (with "input")'
    return f"history pair {index // 2 + 1}'s {'answer' if index % 2 else 'question'}"


_CHECKERS = {"alpaca": _alpaca, "sharegpt": _sharegpt, "openai": _openai, "text": _text}
