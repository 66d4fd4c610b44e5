"""SMIYC component-level metrics (``SegEval-AnomalyTrack`` / ``SegEval-ObstacleTrack``).

Re-implements ``SegmentMeIfYouCan/road-anomaly-benchmark@1c7804e``
``road_anomaly_benchmark/metrics/instance_segmentation.py`` (``default_instancer``,
``segment_metrics``, ``MetricSegment.aggregate``), docs/benchmarks.md §3:

Per frame, with ``t`` = the method's pixel ``best_f1_threshold`` on the same split:

1. prediction = ``score > t`` (strict; like numpy 1.x the threshold is first rounded to the score
   dtype when it fits its range), zeroed on void; GT = ``label == 1``;
2. 8-connected components (``scipy.ndimage.label``, 3x3 ones) of both;
3. predicted components smaller than ``min_pred`` pixels are removed; GT components smaller than
   ``min_gt`` pixels become void (so does the background when it is smaller than ``min_gt``);
4. on the remaining ROI, for GT component ``k`` with touching predicted components ``S``:
   ``sIoU(k) = |k ∩ S| / (|k| + |S ∩ background|)`` (the official adjusted union
   ``|S| + |k| - I - |S ∩ other GT|`` simplified), 0 without overlap;
   for predicted component ``j``: ``PPV(j) = |j ∩ GT| / |j|`` (``prec_pred``) and the symmetric
   ``sIoU_pred(j) = |j ∩ G| / (|j| + |G ∩ no-prediction|)``;
5. for each tau in ``linspace(0.25, 0.75, 11)``: TP = #{sIoU >= tau}, FN = #{sIoU < tau},
   FP = #{PPV < tau}.

Dataset: ``siou`` = mean sIoU over all GT components, ``ppv`` = mean PPV over all predicted
components (component-pooled), ``F1_tau = 2TP / (2TP + FN + FP)`` from dataset sums,
``f1_mean`` = mean over the 11 taus.  Configs: AnomalyTrack 500/100 px, ObstacleTrack (also
LostAndFound-testNoKnown) 50/10 px.

State: ``siou_gt``, ``siou_pred``, ``prec_pred`` (per component, concatenate) with
``gt_lengths``/``pred_lengths`` (per frame, concatenate); ``tp``/``fn``/``fp`` (11 taus, sum).
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from oodbench.errors import UsageError

from ._base import Accumulator, MetricInputError, warn_nan
from ._inputs import check_binary_labels, check_label_values, check_scores, to_numpy

__all__ = ["SmiycComponentAccumulator", "COMPONENT_CONFIGS", "frame_components"]

#: config -> (min predicted component size, min GT component size)
COMPONENT_CONFIGS = {
    "AnomalyTrack": (500, 100),
    "ObstacleTrack": (50, 10),
    "LostAndFound": (50, 10),
}
TAUS = np.linspace(0.25, 0.75, 11, endpoint=True)
_STRUCT = np.ones((3, 3), dtype=np.uint8)


def _threshold_in_dtype(threshold: float, dtype: np.dtype) -> Any:
    """The threshold as numpy 1.x compares it with an array of ``dtype`` (value-based casting)."""
    info = np.finfo(dtype)
    if abs(threshold) <= float(info.max):
        return dtype.type(threshold)
    return np.float64(threshold)


#: largest raw (GT id x predicted id) table built directly; beyond it ids are compacted first.
_DENSE_TABLE_CELLS = 1 << 22


def _above(scores: np.ndarray, t: Any) -> np.ndarray:
    """``scores > t``; for float16 scores and a non-negative float16 ``t`` an int16 compare of the
    bit patterns (same result: non-negative finite float16 order like their bits, negative ones
    have the sign bit set), about 8x faster than numpy's float16 compare."""
    if scores.dtype == np.float16 and isinstance(t, np.float16) and t >= 0:
        return scores.view(np.int16) > (t + np.float16(0)).view(np.int16)   # -0 -> +0
    return scores > t


def _contingency(gt_ids: np.ndarray, n_gt: int, pred_ids: np.ndarray, n_pred: int, void: int,
                 min_pred: int | None, min_gt: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROI pixel counts per (GT component, predicted component), and the row / column ids.

    Rows: GT id 0 (background, unless smaller than ``min_gt``) and the GT components of at least
    ``min_gt`` pixels; columns: predicted id 0 (no prediction) and the predicted components of
    at least ``min_pred`` pixels (smaller ones count as id 0). Only rows and columns with ROI
    pixels are kept, in ascending id order -- the table ``np.unique(..., return_inverse=True)``
    of the ROI ids gives, found with ``bincount`` instead of sorting. ``void``: pixels labelled
    255 (GT and predicted id 0 by construction), taken out of cell (0, 0).
    """
    w = n_pred + 1
    if (n_gt + 1) * w <= _DENSE_TABLE_CELLS:
        # one bincount of every pixel's (GT id, predicted id); component sizes are its margins
        key = np.multiply(gt_ids, w, dtype=np.intp)
        key += pred_ids
        raw = np.bincount(key.reshape(-1), minlength=(n_gt + 1) * w).reshape(n_gt + 1, w)
        gt_sizes, pred_sizes = raw.sum(axis=1), raw.sum(axis=0)
    else:
        raw = None
        gt_sizes = np.bincount(gt_ids.reshape(-1), minlength=n_gt + 1)
        pred_sizes = np.bincount(pred_ids.reshape(-1), minlength=w)
    keep = pred_sizes >= min_pred if min_pred is not None else np.ones(w, bool)
    keep[0] = True                                         # column 0: no (kept) prediction
    rows = np.flatnonzero(gt_sizes >= min_gt)              # incl. the background (id 0) rule
    cols = np.flatnonzero(keep)
    if raw is None:
        # compact ids first: kept rows -> 0..len(rows)-1, small GT -> one extra (dropped) row;
        # kept predicted components -> 1..len(cols)-1, removed ones -> 0
        row_of = np.full(n_gt + 1, rows.size, np.intp)
        row_of[rows] = np.arange(rows.size)
        col_of = np.zeros(w, np.intp)
        col_of[cols] = np.arange(cols.size)
        key = row_of[gt_ids]
        key *= cols.size
        key += col_of[pred_ids]
        table = np.bincount(key.reshape(-1), minlength=(rows.size + 1) * cols.size)
        table = table.reshape(rows.size + 1, cols.size)[:-1]
    else:
        table = raw[rows][:, cols]
        table[:, 0] += raw[rows][:, ~keep].sum(axis=1)     # removed predictions count as none
    if rows.size and rows[0] == 0:
        table[0, 0] -= void
    present_rows = table.sum(axis=1) > 0
    present_cols = table.sum(axis=0) > 0
    return table[present_rows][:, present_cols], rows[present_rows], cols[present_cols]


def frame_components(scores: np.ndarray, labels: np.ndarray, threshold: float, min_pred: int,
                     min_gt: int) -> dict[str, np.ndarray]:
    """Per-frame component values (``siou_gt``, ``siou_pred``, ``prec_pred``) and tau counts."""
    from scipy import ndimage  # here, not at import: ~0.3 s that only the component pass needs

    t = _threshold_in_dtype(float(threshold), scores.dtype)
    valid = labels != 255
    gt_ids, n_gt = ndimage.label(labels == 1, _STRUCT)
    pred_ids, n_pred = ndimage.label(_above(scores, t) & valid, _STRUCT)
    void = labels.size - int(np.count_nonzero(valid))
    table, gu, pu = _contingency(gt_ids, n_gt, pred_ids, n_pred, void, min_pred, min_gt)
    out: dict[str, np.ndarray] = {}
    g_rows = np.flatnonzero(gu > 0)
    p_cols = np.flatnonzero(pu > 0)
    bg_row = np.flatnonzero(gu == 0)
    bg_col = np.flatnonzero(pu == 0)
    c0_by_pred = table[bg_row[0]] if bg_row.size else np.zeros(pu.size, np.int64)
    c0_by_gt = table[:, bg_col[0]] if bg_col.size else np.zeros(gu.size, np.int64)
    siou_gt = []
    for r in g_rows:
        touch = p_cols[table[r, p_cols] > 0]
        inter = int(table[r, touch].sum())
        union = int(table[r].sum()) + int(c0_by_pred[touch].sum())
        siou_gt.append(inter / union)
    siou_pred, prec = [], []
    for c in p_cols:
        touch = g_rows[table[g_rows, c] > 0]
        inter = int(table[touch, c].sum())
        size = int(table[:, c].sum())
        siou_pred.append(inter / (size + int(c0_by_gt[touch].sum())))
        prec.append(inter / size)
    out["siou_gt"] = np.array(siou_gt, np.float64)
    out["siou_pred"] = np.array(siou_pred, np.float64)
    out["prec_pred"] = np.array(prec, np.float64)
    out["tp"] = np.array([np.count_nonzero(out["siou_gt"] >= t_) for t_ in TAUS], np.int64)
    out["fn"] = np.array([np.count_nonzero(out["siou_gt"] < t_) for t_ in TAUS], np.int64)
    out["fp"] = np.array([np.count_nonzero(out["prec_pred"] < t_) for t_ in TAUS], np.int64)
    return out


_COMPONENT_VALUES = ("siou_gt", "siou_pred", "prec_pred")
_TAU_COUNTS = ("tp", "fn", "fp")


class SmiycComponentAccumulator(Accumulator):
    """SMIYC SegEval: ``siou``, ``ppv``, ``f1_mean`` (+ ``f1_25/50/75`` and counts).

    Args:
        config: ``"AnomalyTrack"`` (500/100 px) or ``"ObstacleTrack"`` / ``"LostAndFound"`` (50/10 px).
        threshold: the method's pixel ``best_f1_threshold`` on the same split (pass 1:
            :class:`~.smiyc.SmiycPixelAccumulator`).
    """

    name: ClassVar[str] = "smiyc-components"
    version: ClassVar[str] = "SegEval@1c7804e"

    def __init__(self, config: str = "AnomalyTrack", threshold: float = float("nan")) -> None:
        if config not in COMPONENT_CONFIGS:
            raise UsageError(f"unknown SegEval config {config!r}; choose one of {list(COMPONENT_CONFIGS)}")
        if not np.isfinite(threshold):
            raise ValueError("SmiycComponentAccumulator needs threshold= (the pixel best_f1_threshold "
                             "of the same method and split)")
        self.config = config
        self.threshold = float(threshold)
        self.min_pred, self.min_gt = COMPONENT_CONFIGS[config]
        super().__init__()
        # per frame, concatenated in frame order: per-component values and per-tau counts
        for key in _COMPONENT_VALUES:
            self.add_state(key, [], merge="cat", dtype=np.float64)
        for key in _TAU_COUNTS:
            self.add_state(key, [], merge="cat", dtype=np.int64, item_shape=(TAUS.size,))

    def _config(self) -> dict[str, Any]:
        return {"config": self.config, "threshold": self.threshold}

    def update(self, scores: Any, labels: Any, frame_id: Any = None) -> None:
        """Add one frame (same scores/labels as the pixel pass)."""
        where = self._frame_name(frame_id)
        s, lab = to_numpy(scores), to_numpy(labels)
        if s.shape != lab.shape or s.ndim != 2:
            raise MetricInputError(
                f"{where}: SegEval needs 2-D scores and labels of the same shape, got "
                f"{tuple(s.shape)} and {tuple(lab.shape)}")
        s = check_scores(s, where)
        lab = check_binary_labels(lab, where)
        check_label_values(lab, where)
        frame = frame_components(s, lab, self.threshold, self.min_pred, self.min_gt)
        for key in (*_COMPONENT_VALUES, *_TAU_COUNTS):
            getattr(self, key).append(frame[key])
        self._num_updates += 1

    def compute(self) -> dict[str, Any]:
        n_gt = sum(a.size for a in self.siou_gt)
        n_pred = sum(a.size for a in self.siou_pred)
        # official: sum over frames of np.sum(per-frame values) / total count
        siou = sum(float(np.sum(a)) for a in self.siou_gt) / n_gt if n_gt else warn_nan("sIoU")
        siou_pred = (sum(float(np.sum(a)) for a in self.siou_pred) / n_pred if n_pred
                     else warn_nan("sIoU_pred"))
        ppv = sum(float(np.sum(a)) for a in self.prec_pred) / n_pred if n_pred else warn_nan("PPV")
        res: dict[str, Any] = {"siou": siou, "ppv": ppv, "siou_pred": siou_pred}
        sums = {k: [sum(int(row[i]) for row in getattr(self, k)) for i in range(TAUS.size)]
                for k in _TAU_COUNTS}
        acc = {"tp_mean": 0.0, "fn_mean": 0.0, "fp_mean": 0.0, "f1_mean": 0.0}
        for i, tau in enumerate(TAUS):
            tp, fn, fp = sums["tp"][i], sums["fn"][i], sums["fp"][i]
            denom = 2 * tp + fn + fp
            f1 = (2 * tp) / denom if denom else float("nan")
            if i in (0, 5, 10):
                pct = int(round(tau * 100))
                res.update({f"tp_{pct}": float(tp), f"fn_{pct}": float(fn), f"fp_{pct}": float(fp),
                            f"f1_{pct}": f1})
            acc["tp_mean"] += tp
            acc["fn_mean"] += fn
            acc["fp_mean"] += fp
            acc["f1_mean"] += f1
        for k in acc:
            acc[k] /= len(TAUS)
        res.update(acc)
        res.update({"threshold": self.threshold, "num_frames": float(len(self.tp)),
                    "num_gt_components": float(n_gt), "num_pred_components": float(n_pred)})
        return self._result(res)
