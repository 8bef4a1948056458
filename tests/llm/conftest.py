"""Fixtures of the LLM data tests: the tiny Llama without a chat template, and both tokenizers (the
tiny Llama itself and a trained run of it are in tests/conftest.py, the app's tests use them too)."""

from __future__ import annotations

from pathlib import Path

import pytest



@pytest.fixture(scope="session")
def tiny_llama_plain(tmp_path_factory) -> Path:
    """The same tiny Llama without a chat template, as base models come."""
    from trainer.llm.tiny_model import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama-plain"), chat_template=False)


@pytest.fixture(scope="session")
def chat_tokenizer(tiny_llama):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llama, local_files_only=True)


@pytest.fixture(scope="session")
def plain_tokenizer(tiny_llama_plain):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llama_plain, local_files_only=True)
