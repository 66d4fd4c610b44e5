r"""Polynomial ("poly") learning-rate decay.

.. math:: \mathrm{lr}_g(t) = \max\!\big(\mathrm{base}_g\,(1 - t/T)^{p},\ \mathrm{min\_lr}\big)

for parameter group :math:`g`, iteration :math:`t \in [0, T)` (0-based, the step about to run),
total iterations :math:`T` and power :math:`p` (0.9 for DeepLab and RPL). ``base_g`` is the group's
``initial_lr`` (so a head at 10x keeps its ratio). The LR is set *before* each step, i.e. "stepped
after each iteration" for the next one.

Reference: ``yyliu01/RPL:rpl_corocl.code/engine/lr_policy.py`` (``WarmUpPolyLR``, no warm-up, LR
clipped to [1e-8, base]) applied after ``optimizer.step()`` with the index of the step just done,
so steps 0 and 1 both run at the base LR (an off-by-one, docs/rpl-official.md §6).
``off_by_one=True`` reproduces that; the default uses ``lr(t)`` for step ``t``.
"""
from __future__ import annotations

import torch

from oodbench.errors import UsageError

__all__ = ["poly_lr", "PolySchedule"]


def poly_lr(base_lr: float, t: int, total: int, power: float = 0.9, min_lr: float = 0.0) -> float:
    """The poly LR for step ``t`` of ``total`` (see module doc)."""
    if total <= 0:
        raise UsageError(f"total iterations must be positive, got {total}")
    if not 0 <= t <= total:
        raise ValueError(f"iteration {t} outside [0, {total}]")
    return max(base_lr * (1.0 - t / total) ** power, min_lr)


class PolySchedule:
    """Applies :func:`poly_lr` to every parameter group of an optimizer.

    Each group must carry ``initial_lr`` (set here from ``lr`` on first use), so the schedule is a
    pure function of the iteration: resuming needs no scheduler state.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total_iters: int,
        power: float = 0.9,
        min_lr: float = 0.0,
        off_by_one: bool = False,
    ) -> None:
        self.optimizer = optimizer
        self.total = int(total_iters)
        self.power = power
        self.min_lr = min_lr
        self.off_by_one = off_by_one
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])

    def set(self, t: int) -> float:
        """Set every group's LR for step ``t``; return the base (smallest) group LR, for logs."""
        k = max(t - 1, 0) if self.off_by_one else t
        for g in self.optimizer.param_groups:
            g["lr"] = poly_lr(g["initial_lr"], k, self.total, self.power, self.min_lr)
        return min(g["lr"] for g in self.optimizer.param_groups)
