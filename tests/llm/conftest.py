"""Fixtures of the LLM data tests: the tiny Llama (with and without a chat template) and its tokenizers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_helpers import trainer_cli


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    """The tiny Llama folder (ChatML template), made by the real `make-tiny-model --family llama`."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    result = trainer_cli("make-tiny-model", str(folder), "--family", "llama")
    assert result.returncode == 0, result.stderr
    assert f"model folder: {folder / 'llama'}" in result.stdout
    return folder / "llama"


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
