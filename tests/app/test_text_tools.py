"""Caption text tools: tag operations and CLIP token counting without torch."""

from __future__ import annotations

import pytest

from lora_studio.tags import BulkEdit, Operation, compute_changes, split_tags, tag_counts
from lora_studio.tokens import count_tokens, token_cutoff

SAMPLES = [
    "a photo of sks dog, oil painting, masterpiece, highly detailed",
    "Héllo wörld 12345 (best:1.2) <lora:x> don't &amp; 日本語",
    "1girl, solo, long_hair, looking at viewer, smile, ___, ...",
    "",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_token_count_matches_clip_tokenizer(text):
    transformers = pytest.importorskip("transformers")
    from pathlib import Path
    folder = Path(__file__).resolve().parents[2] / "trainer" / "resources" / "clip_tokenizer"
    tokenizer = transformers.CLIPTokenizer.from_pretrained(str(folder))
    assert count_tokens(text) == (len(tokenizer(text)["input_ids"]) - 2, True)


def test_token_cutoff_points_at_the_first_ignored_word():
    text = ", ".join(f"tag{i}" for i in range(60))
    cutoff = token_cutoff(text)
    assert cutoff is not None
    assert count_tokens(text[:cutoff])[0] <= 75 < count_tokens(text[: cutoff + 5])[0]
    assert token_cutoff("short caption") is None


def test_tag_operations():
    assert split_tags(" a, ,b ,c,") == ["a", "b", "c"]
    assert tag_counts(["a, b", "b, b", ""]) == {"a": 1, "b": 2}
    captions = {0: "cat, painting", 1: "painting of a dog", 2: "oil painting, x"}
    whole = compute_changes(captions, BulkEdit(Operation.REPLACE, "painting", "oil painting", whole_tag=True))
    assert whole == {0: ("cat, painting", "cat, oil painting")}
    plain = compute_changes(captions, BulkEdit(Operation.REPLACE, "Painting", "P", case_sensitive=False))
    assert set(plain) == {0, 1, 2}
    literal = compute_changes({0: "a"}, BulkEdit(Operation.REPLACE, "a", r"\1 not a group"))
    assert literal == {0: ("a", r"\1 not a group")}
    removed = compute_changes(captions, BulkEdit(Operation.REPLACE, "x", "", whole_tag=True))
    assert removed == {2: ("oil painting, x", "oil painting")}
    assert compute_changes({0: "b, a, b"}, BulkEdit(Operation.SORT_TAGS)) == {0: ("b, a, b", "a, b")}
    assert compute_changes({0: "b, a, b"}, BulkEdit(Operation.DEDUPE_TAGS)) == {0: ("b, a, b", "b, a")}
    assert compute_changes({0: "x, sks"}, BulkEdit(Operation.PREPEND_TRIGGER, "sks")) == {0: ("x, sks", "sks, x")}
    assert BulkEdit(Operation.ADD_TAG, "a, b").validate() == "A tag cannot contain a comma; add one tag at a time."
    assert BulkEdit(Operation.REPLACE, "(", regex=True).validate().startswith("The regular expression is not valid")
