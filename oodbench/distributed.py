"""Sharded evaluation with ``torch.distributed`` (launched by ``torchrun``).

``torchrun --nproc_per_node N -m oodbench run ...`` starts N copies of the CLI. Each process
predicts a contiguous shard of every split's frames into the shared prediction store, waits at a
barrier, accumulates metric states over its shard, and the states are all-gathered and merged in
rank order on every process (:func:`make_reducer`). Because shards are contiguous and merged in
rank order, the merged state is the single-process state, so the metrics are identical. gloo is
used on CPU and NCCL on CUDA; rank 0 alone writes result records and prints.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

import torch
import torch.distributed as dist

__all__ = ["DistContext", "init_from_env", "shard", "make_reducer", "barrier", "gather_objects"]

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(device: str = "cpu") -> DistContext:
    """Initialise the process group when launched by torchrun (``WORLD_SIZE`` > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") and torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return DistContext(rank=rank, world_size=world, local_rank=local_rank)


def shard(items: Sequence[T], ctx: DistContext) -> list[T]:
    """Contiguous shard ``rank`` of ``items`` (sizes differ by at most one)."""
    n, w, r = len(items), ctx.world_size, ctx.rank
    start = r * n // w
    stop = (r + 1) * n // w
    return list(items[start:stop])


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """``all_gather_object``: every rank receives the list of all ranks' objects, in rank order."""
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def make_reducer(ctx: DistContext) -> Callable[[Any], Any]:
    """A function merging an accumulator's state over all ranks (rank order); identity if not distributed."""

    def reduce(acc: Any) -> Any:
        if not ctx.enabled:
            return acc
        states = gather_objects(acc.state_dict(), ctx)
        merged = type(acc).from_state(states[0])
        for state in states[1:]:
            merged.merge(type(acc).from_state(state))
        return merged

    return reduce
