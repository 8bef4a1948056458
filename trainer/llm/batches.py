"""Token rows to batches: the order of an epoch, and padded (or packed) tensors.

The order of an epoch is a pure function of the seed and the epoch number, as for image
batches, so a resume at any batch repeats exactly what an uninterrupted run does. Rows are
padded on the right to the longest row of their batch; padding is masked out of the
attention and carries no loss. A packed row holds several examples: its attention mask is
block-diagonal (each example attends to itself only) and its positions restart per example,
so a packed example's loss is the loss it has alone.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from trainer.llm.tokenize import IGNORE_INDEX, PackedRow, TokenizedRow


@dataclass
class TokenBatch:
    """Model inputs of one batch, and how many tokens it holds (padding not counted)."""

    inputs: dict[str, torch.Tensor]
    tokens: int
    rows: int


def epoch_order(count: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Row indices of each batch of ``epoch``: a seeded shuffle, cut into batches (the last may be smaller)."""
    order = list(range(count))
    random.Random(f"{seed}:{epoch}").shuffle(order)
    return [order[i:i + batch_size] for i in range(0, count, batch_size)]


def collate(rows: Sequence[TokenizedRow | PackedRow], pad_id: int, device: torch.device) -> TokenBatch:
    """Right-padded ``input_ids``, ``labels`` and the attention mask (4-D and block-diagonal for packed rows)."""
    width = max(len(row.input_ids) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, :len(row.input_ids)] = torch.tensor(row.input_ids)
        labels[i, :len(row.labels)] = torch.tensor(row.labels)
    tokens = sum(len(row.input_ids) for row in rows)
    inputs = {"input_ids": ids, "labels": labels}
    if isinstance(rows[0], PackedRow):
        inputs["attention_mask"], inputs["position_ids"] = _packed_mask(rows, width)
    else:
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            mask[i, :len(row.input_ids)] = 1
        inputs["attention_mask"] = mask
    return TokenBatch({k: v.to(device) for k, v in inputs.items()}, tokens, len(rows))


def _packed_mask(rows: Sequence[PackedRow], width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A [batch, 1, width, width] boolean mask (True: may attend) that is causal within each example only."""
    mask = torch.zeros((len(rows), 1, width, width), dtype=torch.bool)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    causal = torch.ones((width, width), dtype=torch.bool).tril()
    for i, row in enumerate(rows):
        start = 0
        for length in row.lengths:
            end = start + length
            mask[i, 0, start:end, start:end] = causal[:length, :length]
            start = end
        positions[i, :len(row.position_ids)] = torch.tensor(row.position_ids)
        # Padding attends to itself only, so no row of the softmax is empty.
        for j in range(start, width):
            mask[i, 0, j, j] = True
    return mask, positions
