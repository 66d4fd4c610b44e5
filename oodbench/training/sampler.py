"""Deterministic, resumable, world-size-invariant batch order.

Epoch ``e`` visits the dataset in the order ``randperm(n, generator=(seed, e))`` (or ``0..n-1``
without shuffling). Global batch ``b`` is positions ``[b*B, (b+1)*B)`` of that order, with
``B = batch_size * world_size``; rank ``r`` takes the contiguous slice
``[b*B + r*batch_size, b*B + (r+1)*batch_size)``. Consequences:

* ``world_size`` ranks with ``batch_size`` each see, in rank order, exactly the global batch one
  process with ``batch_size * world_size`` sees (``DistributedSampler`` interleaves ranks instead);
* the order is a pure function of ``(seed, epoch)``: resuming at batch ``k`` is ``start_batch=k``;
* every item is ``(index, epoch)``, so a dataset keys its augmentation randomness by the sample
  and the epoch (:func:`oodbench.training.seeding.numpy_rng`) -- independent of worker processes.

The last incomplete global batch is dropped (``drop_last``; all ranks must take the same number of
steps).
"""
from __future__ import annotations

from typing import Iterator

import torch

from oodbench.errors import UsageError

from .seeding import torch_generator

__all__ = ["EpochBatchSampler", "epoch_order", "epoch_loader"]


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool) -> torch.Tensor:
    """The visiting order of epoch ``epoch`` (a permutation of ``range(n)``)."""
    if not shuffle:
        return torch.arange(n)
    return torch.randperm(n, generator=torch_generator(seed, epoch, "order"))


class EpochBatchSampler(torch.utils.data.Sampler):
    """This rank's batches of ``(index, epoch)`` for one epoch (see module doc)."""

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int,
        epoch: int,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        start_batch: int = 0,
    ) -> None:
        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1, got {batch_size}")
        if n < batch_size * world_size:
            raise UsageError(
                f"dataset of {n} samples is smaller than one global batch ({batch_size} x {world_size} ranks)"
            )
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, epoch
        self.rank, self.world_size, self.shuffle = rank, world_size, shuffle
        self.start_batch = start_batch

    @staticmethod
    def batches_per_epoch(n: int, batch_size: int, world_size: int = 1) -> int:
        return n // (batch_size * world_size)

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch(self.n, self.batch_size, self.world_size) - self.start_batch)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = epoch_order(self.n, self.seed, self.epoch, self.shuffle).tolist()
        gbs = self.batch_size * self.world_size
        for b in range(self.start_batch, self.batches_per_epoch(self.n, self.batch_size, self.world_size)):
            lo = b * gbs + self.rank * self.batch_size
            yield [(order[i], self.epoch) for i in range(lo, lo + self.batch_size)]


def epoch_loader(
    dataset: torch.utils.data.Dataset,
    batch_size: int,
    seed: int,
    epoch: int,
    rank: int,
    world_size: int,
    device: torch.device,
    num_workers: int = 0,
    shuffle: bool = True,
    start_batch: int = 0,
) -> torch.utils.data.DataLoader:
    """A DataLoader over this rank's batches of one epoch (workers seeded by ``(seed, epoch, rank)``)."""
    from .device import loader_kwargs
    from .seeding import WorkerSeeder

    sampler = EpochBatchSampler(len(dataset), batch_size, seed, epoch, rank, world_size, shuffle, start_batch)
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        worker_init_fn=WorkerSeeder(seed, epoch, rank) if num_workers > 0 else None,
        **loader_kwargs(device, num_workers),
    )
