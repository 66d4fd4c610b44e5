r"""Closed-set mIoU from a global confusion matrix (detectron2 ``SemSegEvaluator`` style).

.. math:: \mathrm{IoU}_c = \frac{M_{cc}}{\sum_k M_{ck} + \sum_k M_{kc} - M_{cc}},\qquad
          \mathrm{mIoU} = \operatorname{mean}_{c:\ \text{union}_c > 0} \mathrm{IoU}_c

with :math:`M_{gp}` the pixel count of ground truth ``g`` predicted as ``p``, accumulated over the
whole split (not averaged per image); pixels labelled 255 are ignored, classes that never occur in
ground truth or prediction are left out of the mean (Cityscapes-scripts convention: NaN).
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["confusion_matrix", "miou"]


def confusion_matrix(pred: torch.Tensor, label: torch.Tensor, num_classes: int, ignore: int = 255) -> torch.Tensor:
    """``[K,K]`` int64 counts (rows: ground truth, columns: prediction)."""
    p = pred.reshape(-1).long()
    g = label.reshape(-1).long()
    keep = g != ignore
    p, g = p[keep], g[keep]
    if g.numel() and (int(g.max()) >= num_classes or int(g.min()) < 0):
        raise ValueError(f"labels outside 0..{num_classes - 1} (and {ignore}): max {int(g.max())}")
    return torch.bincount(g * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def miou(conf: torch.Tensor | np.ndarray) -> tuple[float, np.ndarray]:
    """``(mIoU, per-class IoU with NaN for absent classes)`` from a confusion matrix."""
    m = np.asarray(conf.cpu() if isinstance(conf, torch.Tensor) else conf, dtype=np.float64)
    tp = np.diag(m)
    union = m.sum(0) + m.sum(1) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
    valid = ~np.isnan(iou)
    return (float(iou[valid].mean()) if valid.any() else float("nan")), iou
