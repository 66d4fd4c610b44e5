"""Deterministic seeding: every random draw of a training run is a pure function of its keys.

Two mechanisms, used together:

* **Process seeding** (:func:`seed_everything`): seeds Python ``random``, NumPy's legacy global
  generator and torch's global generators from ``derive_seed(seed, rank)``, so code that uses the
  global generators (dropout, third-party transforms) is reproducible per rank.
* **Keyed generators** (:func:`numpy_rng`, :func:`torch_generator`): the data order, each sample's
  augmentation and the CoroCL sampling are drawn from generators keyed by ``(seed, epoch, index)``
  or ``(seed, iteration)``. They hold no state between iterations, which is what makes a resumed
  run (restart at iteration k) draw exactly what an uninterrupted run draws, independent of the
  number of DataLoader workers or of the world size.

DataLoader workers are seeded by :class:`WorkerSeeder` from ``(seed, epoch, rank, worker_id)``.
Keys are mixed with NumPy's :class:`~numpy.random.SeedSequence` (a hash designed for this), never
by adding integers (``seed + rank`` collides: seed 1 rank 0 == seed 0 rank 1).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "derive_seed",
    "numpy_rng",
    "torch_generator",
    "seed_everything",
    "WorkerSeeder",
    "set_deterministic",
]

_MASK63 = (1 << 63) - 1


def _key(k: object) -> int:
    if isinstance(k, (bool, np.bool_)):
        return int(k)
    if isinstance(k, (int, np.integer)):
        if k < 0:
            raise ValueError(f"seed keys must be non-negative integers or strings, got {k}")
        return int(k)
    if isinstance(k, str):
        # stable across processes (unlike hash()): bytes as a big integer
        return int.from_bytes(k.encode("utf-8"), "big")
    raise TypeError(f"seed keys must be int or str, got {type(k).__name__}")


def derive_seed(*keys: int | str) -> int:
    """A 63-bit seed that is a pure function of ``keys`` (e.g. ``(seed, epoch, index)``)."""
    ss = np.random.SeedSequence([_key(k) for k in keys])
    return int(ss.generate_state(1, dtype=np.uint64)[0]) & _MASK63


def numpy_rng(*keys: int | str) -> np.random.Generator:
    """A fresh NumPy generator keyed by ``keys``."""
    return np.random.default_rng(np.random.SeedSequence([_key(k) for k in keys]))


def torch_generator(*keys: int | str, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh torch generator keyed by ``keys``."""
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(*keys))
    return g


def seed_everything(seed: int, rank: int = 0) -> int:
    """Seed Python, NumPy (legacy global) and torch (CPU and CUDA) for this process.

    Returns:
        The derived per-rank seed actually used.
    """
    s = derive_seed(seed, rank, "process")
    random.seed(s)
    np.random.seed(s & 0xFFFFFFFF)
    torch.manual_seed(s)  # also seeds every CUDA device
    return s


@dataclass(frozen=True)
class WorkerSeeder:
    """``worker_init_fn`` seeding a DataLoader worker from ``(seed, epoch, rank, worker_id)``.

    A picklable dataclass (not a closure), so it works with the ``spawn`` start method.
    """

    seed: int
    epoch: int
    rank: int = 0

    def __call__(self, worker_id: int) -> None:
        s = derive_seed(self.seed, self.epoch, self.rank, worker_id, "worker")
        random.seed(s)
        np.random.seed(s & 0xFFFFFFFF)
        torch.manual_seed(s)


def set_deterministic(enabled: bool = True) -> None:
    """Ask torch for deterministic kernels (cuDNN included); ``warn_only`` keeps unsupported ops usable.

    Unlike the reference (``cudnn.deterministic=True`` together with ``cudnn.benchmark=True``, which
    contradict each other), benchmark mode is switched off when determinism is requested.
    """
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled
    torch.use_deterministic_algorithms(enabled, warn_only=True)
