"""Fixtures shared by the trainer tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_helpers import trainer_cli


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """The tiny SD model, made by the real `make-tiny-model` command."""
    folder = tmp_path_factory.mktemp("tiny-model")
    result = trainer_cli("make-tiny-model", str(folder))
    assert result.returncode == 0, result.stderr
    return folder
