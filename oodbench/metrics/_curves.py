"""Exact pooled curve metrics from a compact summary of the ranked pixels.

A pooled ROC/PR curve has one point per distinct score threshold ``t`` (ties merged):
``TP(t) = #{pos >= t}``, ``FP(t) = #{neg >= t}``.  Recall changes only at thresholds that are
positive scores, so AP, AUROC and the FPR95 rules below need only, for every distinct positive
value ``x_j`` (ascending), its count ``c_j``, ``tp_j = #{pos >= x_j}``, ``ge_j = #{neg >= x_j}`` and
``gt_j = #{neg > x_j}`` (:class:`CurveSummary`).  Formulas (P = #pos, N = #neg):

* **AP** (= ``sklearn.metrics.average_precision_score``; SMIYC/Fishyscapes/torchmetrics step rule):
  ``AP = sum_j (c_j / P) * tp_j / (tp_j + ge_j)``.
* **AUROC** (= ``sklearn.metrics.roc_auc_score``, trapezoid over all distinct thresholds):
  ``AUROC = sum_j c_j * (#{neg < x_j} + 0.5 #{neg == x_j}) / (P N)``.
* **FPR at 95 % TPR**, three rules in official use (docs/benchmarks.md §8.1):

  - ``first_tpr_ge``: FPR at the first curve point (highest threshold) with ``TP/P >= 0.95``
    (Fishyscapes ``hermannsblum/bdl-benchmark:bdlb/fishyscapes/benchmark.py``; SMIYC
    ``SegmentMeIfYouCan/road-anomaly-benchmark:road_anomaly_benchmark/metrics/pixel_classification_curves.py``).
  - ``nearest_recall``: Hendrycks ``fpr_and_fdr_at_recall`` (``hendrycks/anomaly-seg:anom_utils.py``;
    StreetHazards, PEBAL, RPL): among the points up to full recall, the one whose recall is nearest
    to 0.95, ties resolved toward the lowest threshold (highest FP).
  - ``first_tpr_gt``: DenseHybrid (``matejgrcic/DenseHybrid:evaluate_osr.py``,
    ``evaluations/base.py``): ``sklearn.metrics.roc_curve(drop_intermediate=True)``, then the first
    point with ``TPR > 0.95``.  ``drop_intermediate`` removes points whose (TP, FP) increments equal
    those of the previous step, so the answer can depend on negative multiplicities just below the
    crossing; they are fetched through ``neg_in_range``.

TPR/recall are compared in float64 exactly as the references compute them (``tp / P``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from oodbench.errors import UsageError

from ._base import MetricInputError

__all__ = ["FPR_RULES", "CurveSummary", "F16_VALUES_ASC", "F16_CODES_ASC", "F16_NONFINITE",
           "fold_f16", "f16_code_hist_to_table"]

FPR_RULES = ("first_tpr_ge", "nearest_recall", "first_tpr_gt")

# -- float16 code tables -------------------------------------------------------------------------
_codes = np.arange(65536, dtype=np.uint32)
F16_NONFINITE = ((_codes >> 10) & 0x1F) == 0x1F
_neg_codes = np.arange(0xFBFF, 0x8000, -1, dtype=np.uint16)   # -65504 ... -min_subnormal
_pos_codes = np.arange(0x0000, 0x7C00, dtype=np.uint16)        # +0 ... +65504 (-0 folded into +0)
#: finite float16 codes in ascending value order (``-0.0`` omitted: fold it into ``+0.0`` first).
F16_CODES_ASC = np.concatenate([_neg_codes, _pos_codes])
#: their values as float64 (strictly increasing).
F16_VALUES_ASC = F16_CODES_ASC.view(np.float16).astype(np.float64)
del _codes, _neg_codes, _pos_codes


def fold_f16(hist: np.ndarray) -> np.ndarray:
    """Counts per float16 code with ``-0.0`` merged into ``+0.0`` (ties are merged)."""
    h = np.array(hist, dtype=np.int64, copy=True)
    h[..., 0x0000] += h[..., 0x8000]
    h[..., 0x8000] = 0
    return h


def f16_code_hist_to_table(hist: np.ndarray) -> np.ndarray:
    """Counts in ascending value order (aligned with :data:`F16_VALUES_ASC`)."""
    return fold_f16(hist)[..., F16_CODES_ASC]


NegRange = Callable[[float, float], "tuple[np.ndarray, np.ndarray]"]


@dataclass
class CurveSummary:
    """Everything the pooled curve metrics need (see module docstring).

    Attributes:
        values: distinct positive scores, ascending (float64).
        pos: count of positives at each value.
        ge: ``#{neg >= value}``.
        gt: ``#{neg > value}``.
        n_pos, n_neg: totals.
        neg_in_range: ``(lo, hi) -> (distinct negative values in [lo, hi] ascending, counts)``; only
            used by the ``first_tpr_gt`` rule.
    """

    values: np.ndarray
    pos: np.ndarray
    ge: np.ndarray
    gt: np.ndarray
    n_pos: int
    n_neg: int
    neg_in_range: NegRange | None = None

    def __post_init__(self) -> None:
        if self.n_pos == 0 or self.n_neg == 0:
            raise MetricInputError(
                f"pixel curve metrics need both classes: {self.n_pos} anomaly and {self.n_neg} "
                "inlier pixels were given (AP/AUROC/FPR95 are undefined)"
            )
        # tp_j = #{pos >= x_j}: suffix sums of the counts
        self.tp = np.cumsum(self.pos[::-1])[::-1]

    # -- metrics ----------------------------------------------------------------------------------
    def average_precision(self) -> float:
        prec = self.tp / (self.tp + self.ge)
        return float(np.sum(self.pos[::-1] / self.n_pos * prec[::-1]))

    def auroc(self) -> float:
        lt2_plus_eq = 2 * (self.n_neg - self.ge) + (self.ge - self.gt)   # 2*#{neg < x} + #{neg == x}
        num = np.sum(self.pos.astype(np.float64) * lt2_plus_eq.astype(np.float64))
        return float(num / (2.0 * self.n_pos * self.n_neg))

    def fpr_at_tpr(self, rule: str = "first_tpr_ge", level: float = 0.95) -> tuple[float, float]:
        """``(fpr, threshold)`` at the operating point selected by ``rule``."""
        tpr = self.tp / self.n_pos            # float64, as the references divide
        if rule == "first_tpr_ge":
            j = int(np.flatnonzero(tpr >= level)[-1])
            return float(self.ge[j] / self.n_neg), float(self.values[j])
        if rule == "nearest_recall":
            d = np.abs(tpr - level)
            j = int(np.flatnonzero(d == d.min())[0])      # smallest j = lowest threshold
            fp = self.ge[0] if j == 0 else self.gt[j - 1]
            # the plateau of recall tpr[j] starts right above x_{j-1}
            return float(fp / self.n_neg), float(self.values[j])
        if rule == "first_tpr_gt":
            return self._first_tpr_gt(level)
        raise UsageError(f"unknown fpr_rule {rule!r}; choose one of {FPR_RULES}")

    # -- DenseHybrid / sklearn drop_intermediate ---------------------------------------------------
    def _first_tpr_gt(self, level: float) -> tuple[float, float]:
        tpr = self.tp / self.n_pos
        jstar = int(np.flatnonzero(tpr > level)[-1])
        m = self.values.size
        width = 2
        while True:
            j_lo = jstar - width
            lo = -np.inf if j_lo < 0 else float(self.values[j_lo])
            hi = np.inf if jstar + 1 >= m else float(self.values[jstar + 1])
            found = self._scan_window(lo, hi, jstar, level)
            if found is not None:
                return found
            if j_lo < 0:  # pragma: no cover - the global last point is always kept
                raise AssertionError("drop_intermediate scan found no kept point")
            width *= 2

    def _scan_window(self, lo: float, hi: float, jstar: int,
                     level: float) -> tuple[float, float] | None:
        if self.neg_in_range is None:  # pragma: no cover - wiring error
            raise RuntimeError("first_tpr_gt needs neg_in_range")
        nv, nc = self.neg_in_range(lo, hi)
        in_pos = (self.values >= lo) & (self.values <= hi)
        pv, pc = self.values[in_pos], self.pos[in_pos]
        thr = np.union1d(nv, pv)[::-1]                        # descending distinct thresholds
        # counts at each threshold
        pcount = np.zeros(thr.size, np.int64)
        ncount = np.zeros(thr.size, np.int64)
        pcount[np.searchsorted(-thr, -pv)] = pc
        ncount[np.searchsorted(-thr, -nv)] = nc
        if np.isfinite(hi):
            j_hi = int(np.searchsorted(self.values, hi, side="right"))
            tp_above = int(self.tp[j_hi]) if j_hi < self.values.size else 0
            fp_above = int(self.gt[j_hi - 1])                 # #{neg > hi}, hi = values[j_hi-1]
        else:
            tp_above = fp_above = 0
        tps = tp_above + np.cumsum(pcount)
        fps = fp_above + np.cumsum(ncount)
        n = thr.size
        first_global = not np.isfinite(hi)
        last_global = not np.isfinite(lo)
        start = int(np.flatnonzero(thr == self.values[jstar])[0])
        for i in range(start, n):
            if i == 0 and first_global:
                keep = True
            elif i == n - 1:
                if not last_global:
                    return None                               # successor unknown: widen window
                keep = True
            elif i == 0:  # pragma: no cover - start >= 1 when the window has a point above
                return None
            else:
                keep = (tps[i + 1] - 2 * tps[i] + tps[i - 1] != 0) or (
                    fps[i + 1] - 2 * fps[i] + fps[i - 1] != 0)
            if first_global and last_global and n <= 2:
                keep = True                                   # sklearn drops nothing for <= 2 points
            if keep and tps[i] / self.n_pos > level:
                return float(fps[i] / self.n_neg), float(thr[i])
        return None  # pragma: no cover
