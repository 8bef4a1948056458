"""Chat templates and token labels: only the assistant's tokens carry the loss, checked against masks
built by hand; the built-in templates' exact text; truncation, packing and the held-out split."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.llm.formats import Example, Turn
from trainer.llm.templates import ALPACA_PREAMBLE, BUILTIN_TEMPLATES, choose_template
from trainer.llm.tokenize import (
    IGNORE_INDEX,
    pack_rows,
    split_validation,
    template_for,
    tokenize_example,
    tokenize_examples,
)
from trainer.problems import ExplainedError

TWO_TURNS = Example(Path("chat.jsonl"), 7, "Be brief.", [
    Turn("user", "Hello"), Turn("assistant", "Hi there"), Turn("user", "Thanks"), Turn("assistant", "You are welcome")])


def hand_built(tokenizer, pieces: list[tuple[str, bool]]) -> tuple[list[int], list[int]]:
    """Token ids of each piece on its own, and labels that keep the ids of the trained pieces only."""
    ids, labels = [], []
    for text, trained in pieces:
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        labels += piece if trained else [IGNORE_INDEX] * len(piece)
    return ids, labels


def test_chatml_two_turn_chat_trains_the_answers_and_their_end_tokens_only(chat_tokenizer):
    template = template_for(chat_tokenizer, "default")
    assert template.name == "tokenizer" and template.warning is None
    row = tokenize_example(TWO_TURNS, chat_tokenizer, template)
    ids, labels = hand_built(chat_tokenizer, [
        ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n", False),
        ("Hi there<|im_end|>\n", True),
        ("<|im_start|>user\nThanks<|im_end|>\n<|im_start|>assistant\n", False),
        ("You are welcome<|im_end|>\n", True),
    ])
    assert row.input_ids == ids
    assert row.labels == labels
    assert chat_tokenizer.decode([t for t in row.labels if t != IGNORE_INDEX]) == (
        "Hi there<|im_end|>\nYou are welcome<|im_end|>\n")
    assert (row.source, row.line, row.truncated) == (Path("chat.jsonl"), 7, False)


def test_a_tokenizer_without_template_gets_the_named_builtin_with_bos_and_eos(plain_tokenizer):
    template = template_for(plain_tokenizer)
    assert template.name == "default" and "no chat template" in template.warning and "'default'" in template.warning
    row = tokenize_example(TWO_TURNS, plain_tokenizer, template)
    ids, labels = hand_built(plain_tokenizer, [
        ("<s>### System:\nBe brief.\n\n### User:\nHello\n\n### Assistant:\n", False),
        ("Hi there</s>", True),
        ("\n\n### User:\nThanks\n\n### Assistant:\n", False),
        ("You are welcome</s>", True),
    ])
    assert row.input_ids[0] == plain_tokenizer.bos_token_id
    assert row.input_ids == ids
    assert row.labels == labels


def test_train_on_prompt_trains_every_token(plain_tokenizer):
    template = template_for(plain_tokenizer, "chatml")
    assert "chatml" in template.warning
    masked = tokenize_example(TWO_TURNS, plain_tokenizer, template)
    everything = tokenize_example(TWO_TURNS, plain_tokenizer, template, train_on_prompt=True)
    assert everything.input_ids == masked.input_ids
    assert everything.labels == everything.input_ids
    assert 0 < masked.trained_tokens < everything.trained_tokens


def test_builtin_templates_render_their_reference_text(plain_tokenizer):
    chat = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": " Hi "},
            {"role": "user", "content": "Thanks"}]

    def render(name: str, messages: list, prompt: bool = True) -> str:
        return plain_tokenizer.apply_chat_template(messages, chat_template=BUILTIN_TEMPLATES[name], tokenize=False,
                                                   add_generation_prompt=prompt)

    assert render("chatml", chat) == ("<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n Hi <|im_end|>\n"
                                      "<|im_start|>user\nThanks<|im_end|>\n<|im_start|>assistant\n")
    assert render("llama3", [{"role": "system", "content": "S"}] + chat) == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nThanks<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n")
    # Stanford Alpaca's prompt_no_input, and its training text: the output followed by eos.
    stanford = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
                "request.\n\n### Instruction:\n{instruction}\n\n### Response:\n")
    assert ALPACA_PREAMBLE in stanford
    one = [{"role": "user", "content": "Name a colour."}]
    assert render("alpaca", one) == stanford.format(instruction="Name a colour.")
    assert render("alpaca", one + [{"role": "assistant", "content": "Blue."}], prompt=False) == (
        stanford.format(instruction="Name a colour.") + "Blue.</s>")
    assert render("default", [{"role": "system", "content": "S"}] + chat) == (
        "### System:\nS\n\n### User:\nHello\n\n### Assistant:\n Hi </s>\n\n### User:\nThanks\n\n### Assistant:\n")


def test_the_tokenizers_own_template_wins_and_unknown_names_are_explained():
    assert choose_template("{{ x }}", "default").source == "{{ x }}"
    ignored = choose_template("{{ x }}", "llama3")
    assert ignored.name == "tokenizer" and "chat_template: llama3" in ignored.warning
    assert choose_template({"default": "{{ y }}", "tool_use": "{{ z }}"}).source == "{{ y }}"
    assert choose_template(None, "alpaca").name == "alpaca"
    with pytest.raises(ExplainedError) as caught:
        choose_template(None, "vicuna")
    assert "'vicuna'" in caught.value.message and "chatml" in caught.value.hint


def test_builtin_markers_the_tokenizer_lacks_are_warned_about(plain_tokenizer):
    assert "<|eot_id|>" in template_for(plain_tokenizer, "llama3").warning
    assert "no <|" not in template_for(plain_tokenizer, "chatml").warning


def test_a_template_that_rewrites_earlier_turns_is_refused(plain_tokenizer):
    # Like templates that drop reasoning from earlier answers: the last answer is rendered apart.
    rewriting = ("{% for m in messages %}{% if loop.last and m['role'] == 'assistant' %}[final] {% endif %}"
                 "{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}"
                 "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}")
    template = choose_template(rewriting)
    with pytest.raises(ExplainedError) as caught:
        tokenize_example(TWO_TURNS, plain_tokenizer, template)
    assert "chat.jsonl:7" in caught.value.message and "turn 3" in caught.value.message


def test_text_rows_train_every_token_and_end_with_eos(plain_tokenizer):
    row = tokenize_example(Example(Path("t.jsonl"), 1, text="Once upon a time"), plain_tokenizer,
                           template_for(plain_tokenizer))
    expected = [plain_tokenizer.bos_token_id] + plain_tokenizer("Once upon a time", add_special_tokens=False)[
        "input_ids"] + [plain_tokenizer.eos_token_id]
    assert row.input_ids == expected and row.labels == expected


def test_cutoff_len_truncates_counts_and_drops_rows_left_without_an_answer(chat_tokenizer):
    template = template_for(chat_tokenizer)
    short = Example(Path("c.jsonl"), 1, None, [Turn("user", "Hi"), Turn("assistant", "Yes.")])
    long_answer = Example(Path("c.jsonl"), 2, None, [Turn("user", "Hi"), Turn("assistant", "word " * 80)])
    long_prompt = Example(Path("c.jsonl"), 3, None, [Turn("user", "word " * 80), Turn("assistant", "Yes.")])
    full = tokenize_example(long_answer, chat_tokenizer, template)
    cutoff = 40
    assert len(tokenize_example(short, chat_tokenizer, template).input_ids) < cutoff < len(full.input_ids)
    result = tokenize_examples([short, long_answer, long_prompt], chat_tokenizer, template, cutoff_len=cutoff)
    assert result.truncated == 2
    assert [row.line for row in result.rows] == [1, 2] and [row.line for row in result.dropped] == [3]
    cut = result.rows[1]
    assert cut.truncated and cut.input_ids == full.input_ids[:cutoff] and cut.labels == full.labels[:cutoff]


def test_packing_keeps_examples_apart(chat_tokenizer):
    template = template_for(chat_tokenizer)
    examples = [Example(Path("p.jsonl"), n, None, [Turn("user", "Hi " * n), Turn("assistant", "Yes " * n)])
                for n in range(1, 9)]
    rows = tokenize_examples(examples, chat_tokenizer, template, train_on_prompt=True).rows
    cutoff = max(len(r.input_ids) for r in rows) + 10
    packed = pack_rows(rows, cutoff)
    assert len(packed) < len(rows)
    assert sorted(sum((p.lengths for p in packed), [])) == sorted(len(r.input_ids) for r in rows)
    for row in packed:
        assert len(row.input_ids) == len(row.labels) == len(row.position_ids) == sum(row.lengths) <= cutoff
        start = 0
        for length in row.lengths:
            assert row.position_ids[start:start + length] == list(range(length))
            assert row.labels[start] == IGNORE_INDEX  # never predicted from the previous example
            assert row.labels[start + 1:start + length] == row.input_ids[start + 1:start + length]
            start += length
    with pytest.raises(ValueError):
        pack_rows(rows, cutoff_len=5)


def test_validation_split_is_deterministic_disjoint_and_sized():
    items = list(range(100))
    train, val = split_validation(items, 0.1, seed=3)
    assert (train, val) == split_validation(items, 0.1, seed=3)
    assert len(val) == 10 and not set(train) & set(val) and sorted(train + val) == items
    assert val != split_validation(items, 0.1, seed=4)[1]
    assert len(split_validation(items, 7, seed=3)[1]) == 7
    assert split_validation(items, 0, seed=3) == (items, [])
    assert len(split_validation(items[:5], 0.01)[1]) == 1  # a fraction above 0 holds out at least one
    for bad in (1.0, -1, 100, "10%"):
        with pytest.raises(ExplainedError):
            split_validation(items, bad)
