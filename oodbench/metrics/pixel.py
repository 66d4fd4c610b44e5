"""Pooled exact pixel metrics: AuPRC, AuROC, FPR at 95 % TPR (protocols ``exact``, ``fishyscapes``).

Both pool every evaluated pixel of the dataset (labels 0/1; 255 ignored) and rank them exactly
(ties merged):

* ``exact`` -- oodbench's uniform protocol for cross-benchmark comparison; ``fpr_rule`` selects one
  of ``first_tpr_ge`` (default), ``nearest_recall``, ``first_tpr_gt`` (see :mod:`._curves`).
* ``fishyscapes`` -- ``calculate_metrics_perpixAP`` of ``hermannsblum/bdl-benchmark@03773d6``
  (``bdlb/fishyscapes/benchmark.py``; identical in ``hermannsblum/fishyscapes:eval.py``): AP =
  sklearn step AP, AUROC = trapezoid, FPR at the first TPR >= 0.95.  Like the reference, float64
  scores are cast to float32 (the only transform, and the reference's own); float16/32 are exact.

AP/AUROC are identical to ``sklearn.metrics.average_precision_score`` / ``roc_auc_score`` up to
float summation order (~1e-16).

State (see :class:`~._store.ScoreStore`): ``h16`` and ``n_void`` sum; ``pos32``, ``neg32``,
``pos64``, ``neg64`` concatenate (order irrelevant).
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from oodbench.errors import UsageError

from ._base import Accumulator
from ._curves import FPR_RULES
from ._inputs import check_pair
from ._score_store import ScoreStore

__all__ = ["ExactPixelAccumulator", "FishyscapesPixelAccumulator"]


class ExactPixelAccumulator(Accumulator):
    """Exact pooled AuPRC / AuROC / FPR95.

    Args:
        fpr_rule: ``first_tpr_ge`` (default), ``nearest_recall`` or ``first_tpr_gt``.

    Example:
        >>> import numpy as np
        >>> acc = ExactPixelAccumulator()
        >>> acc.update(np.array([0.9, 0.8, 0.2, 0.1], np.float32), np.array([1, 0, 1, 0], np.uint8))
        >>> round(acc.compute()["auroc"], 4)
        0.75
    """

    name: ClassVar[str] = "exact"
    version: ClassVar[str] = "1"
    _fixed_rule: ClassVar[str | None] = None

    def __init__(self, fpr_rule: str = "first_tpr_ge") -> None:
        if fpr_rule not in FPR_RULES:
            raise UsageError(f"unknown fpr_rule {fpr_rule!r}; choose one of {FPR_RULES}")
        if self._fixed_rule is not None and fpr_rule != self._fixed_rule:
            raise UsageError(
                f"protocol {self.name!r} defines FPR95 as {self._fixed_rule!r}; use protocol "
                f"'exact' for fpr_rule={fpr_rule!r}")
        self.fpr_rule = fpr_rule
        super().__init__()
        self.add_state("store", ScoreStore, merge="nested")

    def _config(self) -> dict[str, Any]:
        return {"fpr_rule": self.fpr_rule}

    def _prepare(self, scores: np.ndarray) -> np.ndarray:
        return scores

    def update(self, scores: Any, labels: Any, frame_id: Any = None) -> None:
        """Add one frame: ``scores`` float16/32/64 map, ``labels`` uint8 0/1/255 of the same shape."""
        where = self._frame_name(frame_id)
        s, lab = check_pair(scores, labels, where, check_finite=False)
        self.store.add(self._prepare(s), lab, where)
        self._num_updates += 1

    def compute(self) -> dict[str, Any]:
        """``auprc``, ``auroc``, ``fpr95`` (fractions) and pixel counts."""
        self.store.compact()
        summ = self.store.summary()
        fpr, thr = summ.fpr_at_tpr(self.fpr_rule)
        return self._result({
            "fpr_rule": self.fpr_rule,
            "auprc": summ.average_precision(),
            "auroc": summ.auroc(),
            "fpr95": fpr,
            "fpr95_threshold": thr,
            "num_frames": float(self._num_updates),
            "num_anomaly_pixels": float(summ.n_pos),
            "num_inlier_pixels": float(summ.n_neg),
            "num_void_pixels": float(self.store.n_void),
        })


    def curve(self) -> dict[str, np.ndarray]:
        """The exact pooled curves, one point per distinct anomaly score (descending threshold).

        Returns ``threshold``, ``recall`` (= ``tpr``), ``precision`` and ``fpr``; ``roc_fpr`` /
        ``roc_tpr`` additionally carry the end points (0, 0) and (1, 1) for plotting. The AP of
        :meth:`compute` is the step sum over these PR points.
        """
        self.store.compact()
        summ = self.store.summary()
        tp = summ.tp[::-1].astype(np.float64)
        fp = summ.ge[::-1].astype(np.float64)
        fp_above = summ.gt[::-1].astype(np.float64)          # negatives strictly above the value
        recall = tp / summ.n_pos
        fpr = fp / summ.n_neg
        # exact ROC: before each anomaly value, the negatives strictly above it move FPR alone
        tp_before = np.concatenate([[0.0], tp[:-1]])
        roc_fpr = np.column_stack([fp_above, fp]).ravel() / summ.n_neg
        roc_tpr = np.column_stack([tp_before, tp]).ravel() / summ.n_pos
        return {
            "threshold": summ.values[::-1].copy(),
            "recall": recall,
            "tpr": recall,
            "precision": tp / (tp + fp),
            "fpr": fpr,
            "roc_fpr": np.concatenate([[0.0], roc_fpr, [1.0]]),
            "roc_tpr": np.concatenate([[0.0], roc_tpr, [1.0]]),
        }


class FishyscapesPixelAccumulator(ExactPixelAccumulator):
    """Fishyscapes ``calculate_metrics_perpixAP`` (pooled, exact, first TPR >= 0.95)."""

    name: ClassVar[str] = "fishyscapes"
    version: ClassVar[str] = "calculate_metrics_perpixAP@03773d6"
    _fixed_rule: ClassVar[str | None] = "first_tpr_ge"

    def _prepare(self, scores: np.ndarray) -> np.ndarray:
        # bdlb: ``uncertainties[valid].astype(np.float32)`` -- the reference's own cast
        return scores.astype(np.float32) if scores.dtype == np.float64 else scores
