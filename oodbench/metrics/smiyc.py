"""SMIYC ``PixBinaryClass``: the binned pixel metric of the SegmentMeIfYouCan leaderboard.

Re-implements ``SegmentMeIfYouCan/road-anomaly-benchmark@1c7804e``
(``road_anomaly_benchmark/metrics/pixel_classification.py``: ``binary_confusion_matrix`` with
``num_bins=768, bin_strategy='percentiles'`` and ``aggregate_dynamic_bins``;
``pixel_classification_curves.py``: ``curves_from_cmats``) as run by the organisers (numpy 1.x):

Per frame (ROI = label != 255; P = anomaly scores, N = inlier scores of the ROI):

1. ``vmin``, ``vmax`` over the ROI scores; ``eps = max(0.01 * (vmax - vmin), 0.01)`` where
   ``vmax - vmin`` is computed in the score dtype and the rest in float64 (numpy 1.x promotion;
   numpy >= 2 would round ``eps`` to float16 -- fixtures README finding 2).
2. Bin edges = sorted unique of ``{vmin - eps, vmax + eps}``, ``np.quantile(P, linspace(0, 1,
   min(384, |P|)))`` and the same for ``N`` (numpy 1.23 linear interpolation: ``b - a`` in the
   score dtype, the lerp in float64).
3. ``np.histogram`` counts of P and N per bin ([lo, hi), last bin closed); each bin is represented
   by its lower edge (the threshold).

Pooled: all frames' (threshold, tp, fp) rows ordered by ``np.argsort(thresholds)[::-1]`` (numpy
1.23 introsort, see :mod:`._np1sort`), cumulative sums, repeated thresholds collapsed to their last
occurrence (the first row is kept as a point of its own), (0, 0) prepended / (P, N) appended when
missing; precision = 1 where nothing is predicted.  Then

* ``auprc = sum(diff(recall) * precision[1:])`` (step rule), ``auroc = trapz(tpr, fpr)``,
* ``fpr95 = fpr[searchsorted(tpr, 0.95)]`` (1.0 if never reached),
* ``best_f1 = max 2TP / (2TP + FP + FN)`` and ``best_f1_threshold`` (the threshold that feeds
  :class:`~.components.SmiycComponentAccumulator`).

State: ``thresholds``/``tp``/``fp`` (per-frame bin tables, concatenate), ``frame_lengths`` and
``frame_order`` (concatenate), ``n_pos``/``n_neg`` (sum).  Frame order matters for bit-exact
parity when several frames share the top threshold: pass ``order=`` (the frame's position in the
split) to :meth:`update` when shards are merged out of order; without it list order is used.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from oodbench.errors import UsageError

from ._base import Accumulator, MetricInputError
from ._curves import F16_CODES_ASC, F16_NONFINITE, F16_VALUES_ASC, fold_f16
from ._inputs import check_label_values, check_pair
from ._np1sort import np1_argsort_at

__all__ = ["SmiycPixelAccumulator", "frame_bins"]

NUM_BINS = 768
_PLANE = np.zeros(256, np.intp)
_PLANE[1], _PLANE[255] = 1 << 16, 2 << 16


def _np1_quantiles(value_at: Any, n: int, count: int, dtype: np.dtype) -> np.ndarray:
    """``np.quantile(x, linspace(0, 1, count))`` as numpy 1.23 computes it (method 'linear')."""
    q = np.linspace(0.0, 1.0, count)
    virt = (n - 1) * q
    prev = np.floor(virt)
    above = virt >= n - 1
    prev_i = prev.astype(np.intp)
    prev_i[above] = n - 1
    next_i = np.minimum(prev_i + 1, n - 1)
    next_i[above] = n - 1
    gamma = virt - np.where(above, -1.0, prev)            # numpy uses index -1 for the last item
    a = value_at(prev_i).astype(dtype)
    b = value_at(next_i).astype(dtype)
    diff = (b - a).astype(np.float64)                     # rounded in the score dtype
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    out = a64 + diff * gamma
    hi = gamma >= 0.5
    out[hi] = b64[hi] - diff[hi] * (1 - gamma[hi])
    return out


def frame_bins(scores: np.ndarray, labels: np.ndarray,
               where: str = "frame") -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """One frame's PixBinaryClass table: (lower edges descending, tp per bin, fp per bin, #P, #N)."""
    s = scores.reshape(-1)
    lab = labels.reshape(-1)
    dtype = s.dtype
    if dtype == np.float16:
        key = np.take(_PLANE, lab)                        # 0: inlier, 1: anomaly, 2: void
        key += s.view(np.uint16)
        h = np.bincount(key, minlength=3 << 16)[: 2 << 16].reshape(2, 65536)
        if h[:, F16_NONFINITE].any():
            raise MetricInputError(f"{where}: scores contain NaN or infinite values")
        h = fold_f16(h)[:, F16_CODES_ASC]                 # ascending value order
        counts = [h[1], h[0]]                             # positives, negatives
        cums = [np.cumsum(c) for c in counts]

        def getter(cum: np.ndarray):
            return lambda idx: F16_VALUES_ASC[np.searchsorted(cum, idx, side="right")]

        getters = [getter(c) for c in cums]
        n_pos, n_neg = int(cums[0][-1]), int(cums[1][-1])
        present = np.flatnonzero(h[0] + h[1])
        if present.size == 0:
            raise MetricInputError(f"{where}: no evaluated pixel (all void); PixBinaryClass "
                                   "cannot process an empty frame")
        vmin = np.float16(F16_VALUES_ASC[present[0]])
        vmax = np.float16(F16_VALUES_ASC[present[-1]])

        def below(edges: np.ndarray, k: int, right: bool) -> np.ndarray:
            j = np.searchsorted(F16_VALUES_ASC, edges, side="right" if right else "left")
            c = np.concatenate([[0], cums[k]])
            return c[j]
    else:
        if s.size and not (np.isfinite(s.min()) and np.isfinite(s.max())):
            raise MetricInputError(f"{where}: scores contain NaN or infinite values")
        roi = lab != 255
        if not roi.any():
            raise MetricInputError(f"{where}: no evaluated pixel (all void); PixBinaryClass "
                                   "cannot process an empty frame")
        srt = [np.sort(s[lab == 1]), np.sort(s[lab == 0])]
        n_pos, n_neg = srt[0].size, srt[1].size
        getters = [lambda idx, a=a: a[idx] for a in srt]
        vals = s[roi]
        vmin, vmax = vals.min(), vals.max()

        def below(edges: np.ndarray, k: int, right: bool) -> np.ndarray:
            return np.searchsorted(srt[k].astype(np.float64), edges, side="right" if right else "left")

    vrange = vmax - vmin                                  # in the score dtype
    eps = max(float(vrange) * 1e-2, 1e-2)                 # numpy 1.x: float64 from here on
    parts = [np.array([float(vmin) - eps, float(vmax) + eps])]
    for k, n in ((0, n_pos), (1, n_neg)):
        if n:
            parts.append(_np1_quantiles(getters[k], n, min(NUM_BINS // 2, n), dtype))
    edges = np.unique(np.concatenate(parts))
    hist = []
    for k in (0, 1):
        cum = below(edges[:-1], k, right=False)
        last = below(edges[-1:], k, right=True)
        hist.append(np.diff(np.concatenate([cum, last])))
    return edges[:-1][::-1].copy(), hist[0][::-1].copy(), hist[1][::-1].copy(), n_pos, n_neg


class SmiycPixelAccumulator(Accumulator):
    """SMIYC ``PixBinaryClass`` (AP, FPR95, AUROC, best pixel F1 and its threshold)."""

    name: ClassVar[str] = "smiyc"
    version: ClassVar[str] = "PixBinaryClass@1c7804e"

    def __init__(self, fpr_rule: str = "first_tpr_ge") -> None:
        # PixBinaryClass's FPR95 is ``searchsorted(tpr, 0.95)``: the first point with TPR >= 0.95
        if fpr_rule != "first_tpr_ge":
            raise UsageError(f"protocol 'smiyc' defines FPR95 as 'first_tpr_ge', not {fpr_rule!r}; "
                             "use protocol 'exact' for another rule")
        self.fpr_rule = fpr_rule
        super().__init__()
        # one entry per frame, concatenated in frame order (the official ``np.concatenate``)
        self.add_state("thresholds", [], merge="cat", dtype=np.float64)
        self.add_state("tp", [], merge="cat", dtype=np.int64)
        self.add_state("fp", [], merge="cat", dtype=np.int64)
        self.add_state("frame_order", [], merge="cat", dtype=np.int64, item_shape=())
        self.add_state("n_pos", 0, merge="sum")
        self.add_state("n_neg", 0, merge="sum")

    def update(self, scores: Any, labels: Any, frame_id: Any = None, order: int | None = None) -> None:
        """Add one frame (scores as stored -- float16 for official numbers; labels 0/1/255).

        Args:
            order: the frame's position in the split (optional; see the module notes).
        """
        where = self._frame_name(frame_id)
        s, lab = check_pair(scores, labels, where, check_finite=False)
        check_label_values(lab, where)
        thr, tp, fp, n_pos, n_neg = frame_bins(s, lab, where)
        self.thresholds.append(thr)
        self.tp.append(tp.astype(np.int64))
        self.fp.append(fp.astype(np.int64))
        self.frame_order.append(-1 if order is None else int(order))
        self.n_pos += n_pos
        self.n_neg += n_neg
        self._num_updates += 1

    def compute(self) -> dict[str, Any]:
        if self.n_pos == 0 or self.n_neg == 0:
            raise MetricInputError(
                f"PixBinaryClass needs both classes: {self.n_pos} anomaly and {self.n_neg} inlier "
                "pixels were given")
        frames = list(range(len(self.thresholds)))
        if frames and all(o >= 0 for o in self.frame_order):
            frames.sort(key=lambda i: self.frame_order[i])
        thr = np.concatenate([self.thresholds[i] for i in frames])
        tp = np.concatenate([self.tp[i] for i in frames])
        fp = np.concatenate([self.fp[i] for i in frames])
        u, inv = np.unique(thr, return_inverse=True)
        tp_run = np.cumsum(np.bincount(inv, weights=tp, minlength=u.size)[::-1])
        fp_run = np.cumsum(np.bincount(inv, weights=fp, minlength=u.size)[::-1])
        # the first row of the official descending order is a curve point of its own
        top = np.flatnonzero(thr == u[-1])
        first = int(top[0]) if top.size == 1 else np1_argsort_at(thr, thr.size - 1)
        TP = np.concatenate([[float(tp[first])], tp_run])
        FP = np.concatenate([[float(fp[first])], fp_run])
        TH = np.concatenate([[u[-1]], u[::-1]])
        P, N = float(self.n_pos), float(self.n_neg)
        if TP[0] != 0 or FP[0] != 0:
            TP, FP, TH = np.r_[0.0, TP], np.r_[0.0, FP], np.r_[TH[0] + 1, TH]
        if TP[-1] != P or FP[-1] != N:  # pragma: no cover - every ROI pixel lies in some bin
            TP, FP, TH = np.r_[TP, P], np.r_[FP, N], np.r_[TH, TH[-1] - 1]
        FN, TN = P - TP, N - FP
        tpr = TP / (TP + FN)
        fpr = FP / (FP + TN)
        npred = TP + FP
        precision = np.ones(TP.size)
        precision[npred > 0] = TP[npred > 0] / npred[npred > 0]
        f1 = (2 * TP) / (2 * TP + FP + FN)
        k95 = int(np.searchsorted(tpr, 0.95))
        fpr95, thr95 = (float(fpr[k95]), float(TH[k95])) if k95 < tpr.size else (1.0, 0.0)
        ix = int(np.nanargmax(f1))
        d = np.diff(fpr)
        return self._result({
            "auprc": float(np.sum(np.diff(tpr) * precision[1:])),
            "auroc": float((d * (tpr[1:] + tpr[:-1]) / 2.0).sum()),
            "fpr95": fpr95,
            "best_f1": float(f1[ix]),
            "best_f1_threshold": float(TH[ix]),
            "tpr95_threshold": thr95,
            "recall50_threshold": float(TH[int(np.searchsorted(tpr, 0.50))]),
            "num_curve_points": float(TP.size),
            "num_frames": float(len(frames)),
            "num_anomaly_pixels": P,
            "num_inlier_pixels": N,
        })
