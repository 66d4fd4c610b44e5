r"""Batch normalisation with statistics over the global batch of all ranks, on any backend.

``torch.nn.SyncBatchNorm`` refuses CPU tensors in training mode (``SyncBatchNorm.forward`` in
``torch/nn/modules/batchnorm.py`` raises ``ValueError``). :class:`DistBatchNorm2d` is a small
gloo-compatible equivalent for CPU runs: in training mode it computes

.. math::
    \mu = \frac{\sum_{r} \sum_{i \in r} x_i}{N},\qquad
    \sigma^2 = \frac{\sum_{r} \sum_{i \in r} (x_i - \mu)^2}{N},\qquad
    y = \gamma \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta

with :math:`N` the element count per channel over all ranks (two passes: mean first, so there is no
``E[x^2]-E[x]^2`` cancellation), through autograd-aware all-reduces, and updates the running
statistics with the unbiased variance exactly as ``nn.BatchNorm2d`` does. In eval mode, or when
not distributed, it is plain ``nn.BatchNorm2d``. Parameters and buffers keep their names, so
checkpoints are unchanged by the conversion.

:func:`convert_batchnorm` picks ``nn.SyncBatchNorm`` on CUDA and :class:`DistBatchNorm2d` on CPU.
"""
from __future__ import annotations

import torch
from torch import nn

from oodbench.errors import UsageError

from .distributed import DistContext, all_reduce_with_grad, global_sum

__all__ = ["DistBatchNorm2d", "convert_batchnorm"]


class DistBatchNorm2d(nn.BatchNorm2d):
    """``BatchNorm2d`` whose training statistics span every rank of ``ctx`` (see module doc)."""

    def __init__(self, num_features: int, ctx: DistContext, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        self.ctx = ctx

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.ctx.distributed):
            return super().forward(x)
        if x.dim() != 4:
            raise ValueError(f"DistBatchNorm2d expects [N,C,H,W], got shape {tuple(x.shape)}")
        local_n = x.shape[0] * x.shape[2] * x.shape[3]
        n = float(global_sum(torch.tensor(local_n, dtype=torch.int64), self.ctx))
        if n <= 1:
            raise UsageError(f"DistBatchNorm2d: need more than 1 value per channel over all ranks, got {n:g}")
        xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x  # statistics in >= fp32
        mean = all_reduce_with_grad(xf.sum(dim=(0, 2, 3)), self.ctx) / n
        centred = xf - mean[None, :, None, None]
        var = all_reduce_with_grad((centred * centred).sum(dim=(0, 2, 3)), self.ctx) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach().to(self.running_mean.dtype), alpha=m)
                unbiased = var.detach() * (n / (n - 1))
                self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)
        y = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)


def _replace_bn(module: nn.Module, make) -> nn.Module:
    if isinstance(module, nn.BatchNorm2d) and not isinstance(module, (DistBatchNorm2d, nn.SyncBatchNorm)):
        new = make(module)
        ref = module.running_mean if module.running_mean is not None else next(module.parameters(), None)
        if ref is not None:
            new = new.to(device=ref.device, dtype=ref.dtype)
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        for p_new, p_old in zip(new.parameters(), module.parameters()):
            p_new.requires_grad_(p_old.requires_grad)
        return new
    for name, child in list(module.named_children()):
        setattr(module, name, _replace_bn(child, make))
    return module


def convert_batchnorm(module: nn.Module, ctx: DistContext) -> nn.Module:
    """Make every ``BatchNorm2d`` in ``module`` use global-batch statistics when distributed.

    CUDA: ``nn.SyncBatchNorm`` (NCCL); CPU: :class:`DistBatchNorm2d` (gloo). One process: unchanged.
    Returns the (possibly new) module; call it on the sub-module whose BN layers train.
    """
    if not ctx.distributed:
        return module
    if ctx.device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module, process_group=ctx.group)

    def make(bn: nn.BatchNorm2d) -> DistBatchNorm2d:
        return DistBatchNorm2d(
            bn.num_features, ctx, eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
            track_running_stats=bn.track_running_stats,
        )

    return _replace_bn(module, make)
