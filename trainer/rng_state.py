"""Every random state a run depends on, captured into a checkpoint and put back on resume.

Exact resume needs all of them: torch's (CPU and CUDA) for dropout and augmentation,
Python's and numpy's for data order helpers. torch's go into the checkpoint's training state
(tensors); Python's and numpy's into its JSON state (plain lists).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch from one number."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def torch_rng_state() -> dict[str, Any]:
    """torch's CPU and CUDA generator states (for the checkpoint's training state)."""
    return {"torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def restore_torch_rng(state: dict[str, Any]) -> None:
    """Put back what :func:`torch_rng_state` captured."""
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])


def host_rng_state() -> dict[str, Any]:
    """Python's and numpy's generator states as JSON-ready data."""
    kind, keys, *rest = np.random.get_state()
    return {"python_rng": _jsonable(random.getstate()), "numpy_rng": [kind, keys.tolist(), *rest]}


def restore_host_rng(state: dict[str, Any]) -> None:
    """Put back what :func:`host_rng_state` captured (read back from JSON)."""
    random.setstate(_tupled(state["python_rng"]))
    kind, keys, *rest = state["numpy_rng"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), *rest))


def _tupled(value: Any) -> Any:
    """JSON lists back into the nested tuples `random.setstate` wants."""
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value
