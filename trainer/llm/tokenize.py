"""Examples to token ids and labels: which tokens carry the loss (no torch here).

A chat is rendered through the chat template once, whole, and tokenized once, whole: the
model trains on exactly the tokens it will see at inference (tokenizing pieces separately
and gluing them can give other tokens at the seams). The assistant's answers are found as
*character* spans of that text by rendering prefixes of the conversation:

- the text up to where answer *i* begins is the template's rendering of the messages before
  it with ``add_generation_prompt=True`` (what an inference prompt looks like);
- the text up to where it ends is the rendering of the messages up to and including it;

and each rendering must be a prefix of the next and of the whole (a template that renders
earlier turns differently once more follow is refused, with the reason). What an answer's
rendering adds after its content (``<|im_end|>\\n``, ``<|eot_id|>``, the eos token) is part of
the span, so the model learns to end its turn. Character spans become token labels through
the fast tokenizer's offsets (``return_offsets_mapping``): a token is trained when its
characters overlap an answer (a token that straddles the start of an answer is trained too,
as in transformers' own assistant masks). Slow (Python) tokenizers have no offsets and are
refused.

Labels are ``-100`` (:data:`IGNORE_INDEX`, ignored by the loss) on everything but the
answers unless ``train_on_prompt``. Plain-text rows train on every token, with the eos token
appended. ``cutoff_len`` keeps the first tokens (the system prompt and earliest turns);
truncated rows are counted, and rows left without a trained token are dropped and counted.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from trainer.problems import ExplainedError

from .formats import Example
from .templates import DEFAULT_TEMPLATE, ChatTemplate, choose_template, missing_template_tokens

IGNORE_INDEX = -100
T = TypeVar("T")


@dataclass
class TokenizedRow:
    """One example as tokens: ``labels[i]`` is ``input_ids[i]`` where it is trained, else ``-100``."""

    input_ids: list[int]
    labels: list[int]
    source: Path
    line: int
    truncated: bool = False

    @property
    def trained_tokens(self) -> int:
        """How many tokens carry the loss."""
        return sum(label != IGNORE_INDEX for label in self.labels)


@dataclass
class TokenizedDataset:
    """:func:`tokenize_examples`' result: the rows, and what ``cutoff_len`` did to them."""

    rows: list[TokenizedRow] = field(default_factory=list)
    truncated: int = 0  # rows cut at cutoff_len (dropped ones included)
    dropped: list[TokenizedRow] = field(default_factory=list)  # cut so short that no trained token was left


@dataclass
class PackedRow:
    """Several examples in one row: ``position_ids`` restart at 0 for each, ``lengths`` are theirs in order."""

    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]
    lengths: list[int]


def template_for(tokenizer: Any, name: str = DEFAULT_TEMPLATE) -> ChatTemplate:
    """:func:`~trainer.llm.templates.choose_template` for a tokenizer, warning of missing markers too."""
    template = choose_template(getattr(tokenizer, "chat_template", None), name)
    missing = missing_template_tokens(template, tokenizer.get_vocab())
    if missing:
        extra = (f"; the tokenizer has no {', '.join(missing)} token, so these markers train as several "
                 "ordinary tokens (it works, but a template without markers, default or alpaca, is shorter)")
        template = ChatTemplate(template.name, template.source, (template.warning or "") + extra)
    return template


def tokenize_example(example: Example, tokenizer: Any, template: ChatTemplate, *, cutoff_len: int | None = None,
                     train_on_prompt: bool = False) -> TokenizedRow:
    """``input_ids`` and ``labels`` of one example (see the module docstring for which tokens are trained)."""
    if not getattr(tokenizer, "is_fast", False):
        raise ExplainedError("the model's tokenizer is a slow (Python) tokenizer, which cannot map text to tokens",
                             "give the model folder a tokenizer.json (a fast tokenizer)")
    eos = tokenizer.eos_token
    if eos is None:
        raise ExplainedError("the model's tokenizer has no eos (end) token, so the model could not learn to stop",
                             "use a tokenizer with an eos_token in its tokenizer_config.json")
    if example.is_text:
        ids = tokenizer(example.text, add_special_tokens=True)["input_ids"]
        if not ids or ids[-1] != tokenizer.eos_token_id:
            ids = ids + [tokenizer.eos_token_id]
        labels = list(ids)
    else:
        text, spans = _answer_spans(example, tokenizer, template)
        encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = encoding["input_ids"]
        trained = _in_spans(encoding["offset_mapping"], spans)
        labels = [i if (train_on_prompt or keep) else IGNORE_INDEX for i, keep in zip(ids, trained)]
    truncated = cutoff_len is not None and len(ids) > cutoff_len
    if truncated:
        ids, labels = ids[:cutoff_len], labels[:cutoff_len]
    return TokenizedRow(list(ids), labels, example.source, example.line, truncated)


def tokenize_examples(examples: Iterable[Example], tokenizer: Any, template: ChatTemplate, *,
                      cutoff_len: int | None = None, train_on_prompt: bool = False) -> TokenizedDataset:
    """:func:`tokenize_example` for each example; counts truncated rows and drops those left without loss."""
    result = TokenizedDataset()
    for example in examples:
        row = tokenize_example(example, tokenizer, template, cutoff_len=cutoff_len, train_on_prompt=train_on_prompt)
        result.truncated += row.truncated
        (result.rows if row.trained_tokens else result.dropped).append(row)
    return result


def _answer_spans(example: Example, tokenizer: Any, template: ChatTemplate) -> tuple[str, list[tuple[int, int]]]:
    """The whole rendered chat, and the character span of each answer in it."""
    messages = example.messages()

    def render(upto: int, generation_prompt: bool) -> str:
        return tokenizer.apply_chat_template(messages[:upto], chat_template=template.source, tokenize=False,
                                             add_generation_prompt=generation_prompt)

    whole = render(len(messages), False)
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt, upto = render(index, True), render(index + 1, False)
        if not (upto.startswith(prompt) and whole.startswith(upto)):
            raise ExplainedError(
                f"{example.source}:{example.line}: the chat template renders turn {index + 1} differently once later "
                "turns follow (it rewrites or drops earlier turns, as templates that strip reasoning do), so the "
                "tokens of each answer cannot be found",
                "split multi-turn rows into one row per answer (with the earlier turns as history), or use a "
                "model whose template renders a conversation turn by turn")
        spans.append((len(prompt), len(upto)))
    bos = tokenizer.bos_token
    if template.prepend_bos and bos and _adds_bos(tokenizer) and not whole.startswith(bos):
        # A built-in knows nothing of the model's start token; ordinary text gets it, so chats do too.
        whole, spans = bos + whole, [(start + len(bos), end + len(bos)) for start, end in spans]
    return whole, spans


def render_prompt(messages: list[dict[str, str]], tokenizer: Any, template: ChatTemplate) -> str:
    """The text an inference prompt is, as training rendered it: the template with the generation
    prompt, and the bos token in front where training put it (see :func:`_answer_spans`)."""
    text = tokenizer.apply_chat_template(messages, chat_template=template.source, tokenize=False,
                                         add_generation_prompt=True)
    bos = tokenizer.bos_token
    if template.prepend_bos and bos and _adds_bos(tokenizer) and not text.startswith(bos):
        text = bos + text
    return text


def _adds_bos(tokenizer: Any) -> bool:
    """True when the tokenizer puts its bos token in front of ordinary text."""
    return tokenizer.bos_token_id is not None and tokenizer("", add_special_tokens=True)["input_ids"][:1] == [
        tokenizer.bos_token_id]


def _in_spans(offsets: Sequence[tuple[int, int]], spans: list[tuple[int, int]]) -> list[bool]:
    """For each token's ``(start, end)`` characters: does it overlap one of ``spans`` (sorted, disjoint)?"""
    starts = [start for start, _ in spans]
    trained = []
    for start, end in offsets:
        # The last span that begins before this token ends (or at its start, for an empty token).
        index = bisect.bisect_right(starts, max(start, end - 1)) - 1
        # That span overlaps the token unless it ended before the token began; earlier ones ended earlier still.
        trained.append(index >= 0 and start < spans[index][1])
    return trained


def pack_rows(rows: Sequence[TokenizedRow], cutoff_len: int) -> list[PackedRow]:
    """Pack rows into as few rows of at most ``cutoff_len`` tokens as possible (best fit, longest first).

    Deterministic: rows are placed longest first (ties in their order), each into the fullest
    packed row it still fits in. The first token of every example gets label ``-100`` (it would
    be predicted from the previous example's last token), and ``position_ids`` restart at 0 for
    each example, which is what attention kernels use to keep examples apart. A row longer than
    ``cutoff_len`` (not truncated beforehand) is refused.
    """
    order = sorted(range(len(rows)), key=lambda i: (-len(rows[i].input_ids), i))
    packed: list[PackedRow] = []
    free: list[tuple[int, int]] = []  # (space left, packed row index), sorted
    for i in order:
        row = rows[i]
        size = len(row.input_ids)
        if size > cutoff_len:
            raise ValueError(f"a row of {size} tokens does not fit in cutoff_len={cutoff_len}; truncate it first")
        place = bisect.bisect_left(free, (size, -1))
        if place < len(free):
            space, target = free.pop(place)
        else:
            space, target = cutoff_len, len(packed)
            packed.append(PackedRow([], [], [], []))
        into = packed[target]
        into.input_ids += row.input_ids
        into.labels += [IGNORE_INDEX] + row.labels[1:]
        into.position_ids += list(range(size))
        into.lengths.append(size)
        if space - size > 0:
            bisect.insort(free, (space - size, target))
    return packed


def held_out_count(count: int, val_size: float | int) -> int:
    """How many of ``count`` examples ``val_size`` holds out: a fraction below 1 (rounded, at least one
    when it is above 0), else a count (the config's ``val_size`` is a float either way)."""
    if val_size <= 0:
        return 0
    if val_size < 1:
        return max(1, round(count * val_size))
    return int(val_size)


def split_validation(items: Sequence[T], val_size: float | int, seed: int = 0) -> tuple[list[T], list[T]]:
    """``(train, validation)``: a held-out share of ``items`` that depends only on ``seed``.

    ``val_size`` is a fraction (a float below 1) or a count (an ``int``), counted by
    :func:`held_out_count`. Both lists keep the items' order; at least one item is left to train on.
    """
    count = len(items)
    if isinstance(val_size, bool) or not isinstance(val_size, (int, float)) or val_size < 0:
        raise ExplainedError(f"val_size {val_size!r} is not a fraction or a count",
                             "use a fraction below 1 (0.05: 5 %) or a whole number of examples")
    if isinstance(val_size, float) and val_size >= 1:
        raise ExplainedError(f"val_size {val_size} is not a fraction below 1",
                             "use a fraction below 1 (0.05: 5 %), or a whole number of examples (no decimal point)")
    held = held_out_count(count, val_size)
    if held and held >= count:
        raise ExplainedError(f"val_size {val_size} holds out {held} of {count} examples, leaving none to train on",
                             "use a smaller val_size, or add examples")
    chosen = set(random.Random(seed).sample(range(count), held))
    train = [item for i, item in enumerate(items) if i not in chosen]
    return train, [item for i, item in enumerate(items) if i in chosen]
