"""Several processes training one LoRA (`torchrun --nproc_per_node=N -m trainer train ...`).

Each process (rank) trains on its own share of every step's batches; the LoRA gradients are
averaged across ranks before each optimizer step, so all ranks hold the same weights. Rank 0
alone writes the run directory. One process without torchrun is simply world size 1, and
every collective below is then a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """This process's place among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """Replace each gradient by its mean over all ranks (one flat all-reduce)."""
        if not self.enabled:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.world_size
        offset = 0
        for param, grad in zip(params, grads):
            count = grad.numel()
            param.grad = flat[offset:offset + count].view_as(grad).clone()
            offset += count

    def broadcast_parameters(self, params: list[torch.nn.Parameter]) -> None:
        """Rank 0's values of ``params`` on every rank, so that all ranks train the same weights.

        Averaged gradients keep the ranks equal only if they start equal; a LoRA drawn at random
        on each rank (from a per-rank seed) would not, and a resume (every rank loads rank 0's
        checkpoint) would then continue from other weights than the uninterrupted run had.
        """
        if not self.enabled:
            return
        with torch.no_grad():
            for param in params:
                dist.broadcast(param.data, src=0)

    def mean(self, value: float, device: torch.device) -> float:
        """The mean of ``value`` over all ranks."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return float(tensor.item()) / self.world_size

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when ``flag`` is true on any rank (stop decisions agree)."""
        if not self.enabled:
            return flag
        tensor = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return bool(tensor.item())

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order (the same list on every rank)."""
        if not self.enabled:
            return [value]
        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        if not self.enabled:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def init_distributed() -> DistContext:
    """Join the process group when started by torchrun (WORLD_SIZE > 1), else a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    use_cuda = torch.cuda.is_available() and torch.cuda.device_count() > local_rank
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistContext(rank, world_size, local_rank)


def shutdown(context: DistContext) -> None:
    """Leave the process group (all ranks)."""
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()
