"""Process-group setup from ``torchrun`` environment variables, and the few collectives training needs.

* :func:`init_distributed` reads ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (set by ``torchrun``) and
  initialises NCCL on CUDA or gloo on CPU. ``WORLD_SIZE=1`` (or unset) means one process and no
  process group at all -- the reference entered DDP mode whenever ``WORLD_SIZE`` was set
  (docs/rpl-official.md §12.16) -- unless ``always_group=True`` asks for a one-rank group anyway, so
  that one GPU runs the distributed code path (NCCL collectives, SyncBatchNorm, DDP), as
  ``benchmarks/gpu_check.sh`` does.
* :func:`global_sum` reduces plain numbers/tensors (no gradient), e.g. pixel counts for global
  masked means and the CoroCL gate, so every rank takes the same decision.
* :func:`all_reduce_with_grad` and :func:`gather_rows` are autograd-aware: their backward passes
  all-reduce the incoming gradients, which is the gradient of ``sum over ranks of the rank losses``.
  Combined with DDP's gradient *averaging*, a loss term that every rank computes identically (e.g.
  CoroCL on globally gathered samples) gets exactly its single-process gradient, and a per-rank
  partial sum must be scaled by ``world_size`` (:func:`global_mean_parts`).

All model-level collectives run on a dedicated process group (``ctx.group``), separate from the
default group DDP uses for its gradient buckets, so the two streams of collectives never interleave.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Sequence

import torch
import torch.distributed as dist

from oodbench.errors import UsageError

__all__ = [
    "DistContext",
    "backend_for",
    "init_distributed",
    "cleanup_distributed",
    "resolve_device",
    "global_sum",
    "global_mean_parts",
    "all_reduce_with_grad",
    "gather_rows",
    "barrier",
    "wrap_ddp",
    "unwrap",
]


@dataclass
class DistContext:
    """Where this process sits in the job.

    Attributes:
        rank, world_size, local_rank: from torchrun (0, 1, 0 in a plain run).
        device: the device this rank trains on.
        backend: ``"nccl"``, ``"gloo"`` or ``None`` (no process group).
        group: process group for model-level collectives (``None`` when not distributed).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    group: Any = None

    @property
    def distributed(self) -> bool:
        """Several ranks, or one rank that was given a process group (``always_group``)."""
        return self.world_size > 1 or self.group is not None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise UsageError(f"environment variable {name}={raw!r} is not an integer") from None


def resolve_device(device: str | torch.device | None, local_rank: int = 0) -> torch.device:
    """``"auto"``/``None`` -> ``cuda:<local_rank>`` when CUDA is available, else CPU."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"device {device!r} requested but CUDA is not available")
        if dev.index is None:
            dev = torch.device("cuda", local_rank % torch.cuda.device_count())
    return dev


def backend_for(device: torch.device) -> str:
    """The process-group backend for a device: NCCL on CUDA, gloo otherwise."""
    return "nccl" if device.type == "cuda" else "gloo"


def init_distributed(device: str | torch.device | None = "auto", timeout_s: float = 1800.0,
                     always_group: bool = False) -> DistContext:
    """Build the :class:`DistContext` from torchrun's variables; init the process group if needed.

    Args:
        always_group: also initialise a process group when there is one process (module doc);
            without torchrun's rendezvous variables it uses an in-process store.
    """
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    if world < 1 or not 0 <= rank < world:
        raise UsageError(f"inconsistent torchrun environment: RANK={rank} WORLD_SIZE={world}")
    dev = resolve_device(device, local_rank)
    if world == 1 and not always_group:
        return DistContext(0, 1, 0, dev, None, None)
    backend = backend_for(dev)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        timeout = timedelta(seconds=timeout_s)
        if world == 1 and "MASTER_ADDR" not in os.environ:
            dist.init_process_group(backend=backend, store=dist.HashStore(), rank=0, world_size=1, timeout=timeout)
        else:
            dist.init_process_group(backend=backend, timeout=timeout)
    group = dist.new_group(backend=backend)
    return DistContext(rank, world, local_rank, dev, backend, group)


def cleanup_distributed(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier(group=ctx.group)


def global_sum(value: torch.Tensor | float | int, ctx: DistContext) -> torch.Tensor:
    """Sum over ranks, without gradient (returns a new float64/int64 CPU-or-device tensor)."""
    t = value.detach().clone() if isinstance(value, torch.Tensor) else torch.tensor(value, dtype=torch.float64)
    if ctx.distributed:
        t = t.to(ctx.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM, group=ctx.group)
    return t


def global_mean_parts(local_sum: torch.Tensor, local_count: torch.Tensor | int, ctx: DistContext):
    """Turn a rank's partial ``(sum, count)`` into its share of the global masked mean.

    Returns ``(loss_share, global_count)`` where ``loss_share = world * local_sum / global_count``
    (0 with a grad-safe zero when the global count is 0). Averaging the shares' gradients over
    ranks (DDP) gives exactly the gradient of ``sum_all / count_all``, the single-process loss on
    the global batch; :func:`global_sum` of ``local_sum / global_count`` gives its value.
    """
    count = global_sum(torch.as_tensor(local_count, dtype=torch.float64), ctx)
    if float(count) == 0.0:
        return local_sum * 0.0, count
    return local_sum * (ctx.world_size / float(count)), count


class _AllReduceSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, group: Any) -> torch.Tensor:  # type: ignore[override]
        ctx.group = group
        y = x.clone()
        dist.all_reduce(y, op=dist.ReduceOp.SUM, group=group)
        return y

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        g = g.contiguous().clone()
        dist.all_reduce(g, op=dist.ReduceOp.SUM, group=ctx.group)
        return g, None


def all_reduce_with_grad(x: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum of ``x`` over ranks; backward all-reduces the gradient (identity in one process)."""
    if not ctx.distributed:
        return x
    return _AllReduceSum.apply(x, ctx.group)


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, sizes: tuple[int, ...], rank: int, group: Any) -> torch.Tensor:  # type: ignore[override]
        ctx.group, ctx.rank, ctx.sizes = group, rank, sizes
        width = max(sizes)
        padded = x.new_zeros((width,) + tuple(x.shape[1:]))
        padded[: x.shape[0]] = x
        bufs = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(bufs, padded.contiguous(), group=group)
        return torch.cat([b[:n] for b, n in zip(bufs, sizes)], dim=0)

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        g = g.contiguous().clone()
        dist.all_reduce(g, op=dist.ReduceOp.SUM, group=ctx.group)
        start = sum(ctx.sizes[: ctx.rank])
        return g[start : start + ctx.sizes[ctx.rank]], None, None, None


def gather_rows(x: torch.Tensor, ctx: DistContext, sizes: Sequence[int] | None = None) -> torch.Tensor:
    """Concatenate every rank's rows ``x [n_r, ...]`` in rank order (sizes may differ, even be 0).

    Args:
        sizes: the row count of every rank when already known (saves one collective).
    """
    if not ctx.distributed:
        return x
    if sizes is None:
        counts = [torch.zeros(1, dtype=torch.int64, device=x.device) for _ in range(ctx.world_size)]
        dist.all_gather(counts, torch.tensor([x.shape[0]], dtype=torch.int64, device=x.device), group=ctx.group)
        sizes = [int(c) for c in counts]
    sizes = tuple(int(s) for s in sizes)
    if sizes[ctx.rank] != x.shape[0]:
        raise ValueError(f"gather_rows: rank {ctx.rank} has {x.shape[0]} rows but sizes says {sizes[ctx.rank]}")
    if max(sizes) == 0:
        return x[:0]
    return _GatherRows.apply(x, sizes, ctx.rank, ctx.group)


def wrap_ddp(model: torch.nn.Module, ctx: DistContext, find_unused_parameters: bool = True) -> torch.nn.Module:
    """DistributedDataParallel around ``model`` when running distributed, else ``model`` itself."""
    if not ctx.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused_parameters)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DDP wrapper (its ``state_dict`` has no ``module.`` prefix)."""
    return getattr(model, "module", model)
