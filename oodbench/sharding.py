"""Sharded evaluation with ``torch.distributed`` (launched by ``torchrun``).

(Named ``sharding`` so it is not confused with the process-group helpers of
:mod:`oodbench.training.distributed`, which it builds on.)

``torchrun --nproc_per_node N -m oodbench run ...`` starts N copies of the CLI. Each process
predicts a contiguous shard of every split's frames into the shared prediction store, waits at a
barrier, accumulates metric states over its shard, and the states are all-gathered and merged in
rank order on every process (:func:`make_reducer`). The process-group setup is the training
engine's (:mod:`oodbench.training.distributed`). Because shards are contiguous and merged in
rank order, the merged state is the single-process state, so the metrics are identical. gloo is
used on CPU and NCCL on CUDA; rank 0 alone writes result records and prints.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence, TypeVar

import torch.distributed as dist

from .training.distributed import DistContext, barrier, init_distributed

__all__ = ["DistContext", "init_distributed", "barrier", "shard", "gather_objects", "make_reducer"]

T = TypeVar("T")


def shard(items: Sequence[T], ctx: DistContext) -> list[T]:
    """Contiguous shard ``rank`` of ``items`` (sizes differ by at most one)."""
    n, w, r = len(items), ctx.world_size, ctx.rank
    return list(items[r * n // w:(r + 1) * n // w])


def gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """``all_gather_object``: every rank receives the list of all ranks' objects, in rank order."""
    if not ctx.distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj, group=ctx.group)
    return out


def make_reducer(ctx: DistContext) -> Callable[[Any], Any]:
    """A function merging an accumulator's state over all ranks (rank order); identity if not distributed."""

    def reduce(acc: Any) -> Any:
        if not ctx.distributed:
            return acc
        return type(acc).merge_states(gather_objects(acc.state_dict(), ctx))

    return reduce
