"""One example as training sees it: the rendered text, which of its characters are trained, its token count.

The trainer's own :func:`~trainer.llm.tokenize.tokenize_example` does the work (render
through the chat template, find the answers, tokenize once, label), on the app's
tokenizer (:mod:`.tokenizer`); this module records the text it tokenized and turns the
trained tokens back into character spans of that text, for highlighting. So the view
shows what training will do, not a second opinion of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.llm.formats import Example
from trainer.llm.rows import ROW_FORMATS, check_row
from trainer.llm.templates import ChatTemplate
from trainer.llm.tokenize import IGNORE_INDEX, template_for, tokenize_example
from trainer.problems import ExplainedError

from .jinja_env import TemplateError
from .tokenizer import ChatTokenizer

Span = tuple[int, int]


@dataclass
class ExamplePreview:
    """What :func:`preview_example` found; ``error`` says why there is no rendering."""

    text: str = ""
    trained: list[Span] = field(default_factory=list)  # character spans of the tokens trained, merged
    tokens: int = 0
    trained_tokens: int = 0  # within cutoff_len: what training actually learns from
    cutoff_char: int | None = None  # where cutoff_len cuts the text (None: it all fits)
    error: str | None = None


class _Recorder:
    """The tokenizer, remembering the last text it tokenized and that text's token offsets."""

    def __init__(self, inner: ChatTokenizer) -> None:
        self._inner = inner
        self.text = ""
        self.offsets: list[Span] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __call__(self, text: str, add_special_tokens: bool = True, return_offsets_mapping: bool = False) -> dict:
        result = self._inner(text, add_special_tokens, True)
        self.text, self.offsets = text, list(result["offset_mapping"])
        return result if return_offsets_mapping else {"input_ids": result["input_ids"]}


def choose(tokenizer: ChatTokenizer, name: str) -> ChatTemplate:
    """The template training uses with this tokenizer (its own, else the built-in ``name``, with a warning)."""
    return template_for(tokenizer, name)


def preview_example(example: Example, tokenizer: ChatTokenizer, template: ChatTemplate,
                    cutoff_len: int | None = None) -> ExamplePreview:
    """The example rendered, its trained characters and its token count against ``cutoff_len``."""
    recorder = _Recorder(tokenizer)
    try:
        row = tokenize_example(example, recorder, template)
    except (ExplainedError, TemplateError) as exc:
        return ExamplePreview(error=str(exc))
    text, offsets = recorder.text, recorder.offsets
    # Tokens past the recorded ones are markers the trainer appended (a plain-text row's eos).
    for _ in range(len(row.input_ids) - len(offsets)):
        marker = tokenizer.eos_token or ""
        offsets.append((len(text), len(text) + len(marker)))
        text += marker
    kept = len(row.input_ids) if cutoff_len is None else min(cutoff_len, len(row.input_ids))
    trained: list[Span] = []
    for (start, end), label in zip(offsets[:kept], row.labels[:kept]):
        if label == IGNORE_INDEX or end <= start:
            continue
        if trained and start <= trained[-1][1]:
            trained[-1] = (trained[-1][0], max(end, trained[-1][1]))
        else:
            trained.append((start, end))
    cutoff_char = None
    if kept < len(row.input_ids):
        cutoff_char = offsets[kept][0]  # where the first token training never sees begins
    trained_tokens = sum(label != IGNORE_INDEX for label in row.labels[:kept])
    return ExamplePreview(text, trained, len(row.input_ids), trained_tokens, cutoff_char)


def count_tokens(example: Example, tokenizer: ChatTokenizer, template: ChatTemplate) -> int | None:
    """The example's token count (None when its template cannot render it)."""
    try:
        return len(tokenize_example(example, tokenizer, template).input_ids)
    except (ExplainedError, TemplateError):
        return None


def count_rows(rows: list[tuple[str, str, str]], tokenizer: ChatTokenizer, template: ChatTemplate,
               progress=None, cancel=None) -> dict[str, int]:
    """Token counts of rows given as ``(name, JSON value, row format)``; rows that are not valid are left out.

    Runs in a worker (a large dataset takes seconds); stops early when ``cancel`` is cancelled.
    ``progress`` is accepted for the worker interface (the count shows when it is done).
    """
    del progress
    counts: dict[str, int] = {}
    for number, (name, value, fmt) in enumerate(rows):
        if cancel is not None and number % 256 == 0 and cancel.cancelled:
            break
        try:
            obj = json.loads(value)
        except ValueError:
            continue
        if not isinstance(obj, dict) or fmt not in ROW_FORMATS:
            continue
        checked, _ = check_row(obj, fmt)
        if checked is None:
            continue
        example = Example(Path(name), 0, checked.system, checked.turns or [], checked.text, fmt)
        count = count_tokens(example, tokenizer, template)
        if count is not None:
            counts[name] = count
    return counts
