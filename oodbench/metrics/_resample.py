"""Frame resamplers: per-frame state of each accumulator -> metric values for rows of frame weights.

A resampler has ``frame_ids`` (one string per frame, in its row order), ``chunk`` (replicates per
call that keep the temporaries bounded), ``metrics(weights)`` mapping an ``r x F`` matrix of frame
multiplicities to ``{metric: values (r,)}``, and ``reordered(order)``.  The full sample is the row
of ones.  Every resampler rebuilds a replicate from the resampled per-frame entries of the
accumulator's own ``cat`` state, so the replicate value is the protocol's value on the resampled
frames (exceptions are named in each class):

* :class:`~._binned.FrameCollector` (``exact`` / ``fishyscapes``): binned, see :mod:`._binned`;
* :class:`SmiycPixelResampler`: the SMIYC pooled curve of the resampled per-frame bin tables;
* :class:`ComponentResampler`: SegEval sIoU / PPV / F1 from resampled per-frame values and counts;
* :class:`PerImageResampler`: the mean over the resampled used images (StreetHazards);
* :class:`OpenSetResampler`: DenseHybrid open-set and closed-set mIoU from resampled per-frame
  confusion counts at the full-sample thresholds.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy import sparse

from ._binned import BinnedFrames, FrameCollector
from .components import TAUS, SmiycComponentAccumulator
from .per_image import HendrycksPerImageAccumulator
from .segmentation import OpenSetFrameCounts
from .smiyc import SmiycPixelAccumulator

__all__ = ["resampler", "SmiycPixelResampler", "ComponentResampler", "PerImageResampler",
           "OpenSetResampler"]


def resampler(source: Any) -> Any:
    """The resampler of an accumulator (or a resampler, returned as is); refuses an empty one."""
    per_frame = {FrameCollector: "frame_ids", SmiycPixelAccumulator: "thresholds",
                 SmiycComponentAccumulator: "tp", OpenSetFrameCounts: "frame_ids"}
    for cls, attr in per_frame.items():
        if isinstance(source, cls) and not getattr(source, attr):
            raise ValueError(f"bootstrap: the {cls.__name__} holds no frames")
    if isinstance(source, HendrycksPerImageAccumulator) and not (source.rows or source.skipped_ids):
        raise ValueError("bootstrap: the HendrycksPerImageAccumulator holds no frames")
    if isinstance(source, FrameCollector):
        return source.binned()
    if isinstance(source, SmiycPixelAccumulator):
        return SmiycPixelResampler(source)
    if isinstance(source, SmiycComponentAccumulator):
        return ComponentResampler(source)
    if isinstance(source, HendrycksPerImageAccumulator):
        return PerImageResampler(source)
    if isinstance(source, OpenSetFrameCounts):
        return OpenSetResampler(source)
    if isinstance(source, (BinnedFrames, SmiycPixelResampler, ComponentResampler, PerImageResampler,
                           OpenSetResampler)):
        return source
    raise TypeError(
        f"no frame bootstrap for {type(source).__name__}: pass a FrameCollector (exact / fishyscapes "
        "protocols), SmiycPixelAccumulator, SmiycComponentAccumulator, HendrycksPerImageAccumulator "
        "or OpenSetFrameCounts")


def _positional_ids(n: int) -> list[str]:
    return [f"#{i}" for i in range(n)]


class SmiycPixelResampler:
    """SMIYC ``PixBinaryClass`` (``auprc``, ``auroc``, ``fpr95``, ``best_f1``) of resampled frames.

    A replicate is the official pooled curve (:mod:`.smiyc`) of the concatenation of each frame's
    bin table, taken as often as the frame was drawn: one point per distinct threshold
    (descending) with the weighted cumulative counts ``TP`` / ``FP``, after a stand-alone first
    point ``(T0, F0)`` (the top row of one table at the highest drawn threshold) and ``(0, 0)``.
    Rather than materialise that curve (a point per distinct threshold, ~770 k for 1000 frames)
    for every replicate, the metrics are evaluated on the thresholds ``J`` where some table has
    anomaly pixels -- the only places where ``TP`` moves.  For ``j`` in ``J``: ``a_j`` anomaly and
    ``b_j`` inlier pixels at ``j``, ``g_j`` inlier pixels at thresholds in ``(j_prev, j]``, each a
    sparse ``|J| x F`` matrix (built once) times the replicate's frame weights, and
    ``TP_j = cumsum(a)``, ``FP_j = cumsum(g)``:

    * ``AP = sum_i dTPR_i precision_i = (1/P) sum_j a_j TP_j / (TP_j + FP_j)``;
    * ``AUROC = sum_i dFPR_i (TPR_i + TPR_{i-1}) / 2 = (1/PN) (sum_j g_j TP_{j_prev} + 1/2 sum_j a_j b_j)``
      (inlier pixels between two anomaly thresholds see a constant ``TP``; ``g`` has one more
      entry for the thresholds below the last ``j``);
    * ``FPR95 = FP_j / N`` at the first point with ``TP / P >= 0.95`` (a ``j``, or ``(T0, F0)``);
    * ``best F1 = max 2 TP / (TP + FP + P)`` over ``(T0, F0)`` and ``J`` (F1 only rises where
      ``TP`` does);

    with the stand-alone first point's two trapezoids and two AP terms put in place of the
    top threshold's.  Counts are integers below 2**53, so TPR, FPR, F1 and the FPR95 point are
    bit-identical to the materialised curve's; AP and AUROC are its sums in another order (~1e-16).
    One detail is approximated: when several drawn rows share the top threshold, the official
    curve's stand-alone first point takes one of them in numpy 1.23 argsort order; here it takes
    the first drawn frame's row (it moves the first curve point only).  Frame ids are the
    ``order=`` positions when every frame has one, else the update index (``#i``).
    """

    chunk: ClassVar[int] = 64           # replicates are computed one by one (vectors stay in cache)

    def __init__(self, acc: SmiycPixelAccumulator | None, _rows: tuple | None = None) -> None:
        if _rows is not None:
            self.frame_ids, thr, tp, fp = _rows
        else:
            order = list(range(len(acc.thresholds)))
            if order and all(o >= 0 for o in acc.frame_order):
                order.sort(key=lambda i: acc.frame_order[i])
                self.frame_ids = [str(acc.frame_order[i]) for i in order]
            else:
                self.frame_ids = _positional_ids(len(order))
            thr = [acc.thresholds[i] for i in order]
            tp = [acc.tp[i] for i in order]
            fp = [acc.fp[i] for i in order]
        self._tables = (self.frame_ids, thr, tp, fp)
        f = len(thr)
        sizes = [a.size for a in thr]
        flat = np.concatenate(thr) if f else np.zeros(0)
        u, inv = np.unique(flat, return_inverse=True)
        col = (u.size - 1 - inv).astype(np.int64)            # column 0 = highest threshold
        row = np.repeat(np.arange(f), sizes)
        tp_all = np.concatenate(tp).astype(np.float64) if f else np.zeros(0)
        fp_all = np.concatenate(fp).astype(np.float64) if f else np.zeros(0)
        self.J = np.unique(col[tp_all > 0])                  # columns where TP moves
        seg = np.searchsorted(self.J, col)                   # j of the segment (j_prev, j]
        on_j = seg < self.J.size
        on_j[on_j] = self.J[seg[on_j]] == col[on_j]
        nj = self.J.size
        self.A = sparse.csr_matrix((tp_all[on_j], (seg[on_j], row[on_j])), shape=(nj, f))
        self.B = sparse.csr_matrix((fp_all[on_j], (seg[on_j], row[on_j])), shape=(nj, f))
        self.G = sparse.csr_matrix((fp_all, (seg, row)), shape=(nj + 1, f))
        # per frame: its highest threshold (tables are stored in descending order) and that row
        starts = np.cumsum([0] + sizes[:-1]).astype(np.int64) if f else np.zeros(0, np.int64)
        self.top_col = col[starts]
        self.top_tp = np.array([a[0] for a in tp], np.float64)
        self.top_fp = np.array([a[0] for a in fp], np.float64)
        # the top column's other rows (frames sharing a frame's top threshold), for (T0, F0)'s column
        self._col_tp = sparse.csc_matrix((tp_all, (row, col)), shape=(f, u.size))
        self._col_fp = sparse.csc_matrix((fp_all, (row, col)), shape=(f, u.size))
        self.n_pos = np.array([a.sum() for a in tp], np.float64)
        self.n_neg = np.array([a.sum() for a in fp], np.float64)

    def reordered(self, order: np.ndarray) -> "SmiycPixelResampler":
        ids, thr, tp, fp = self._tables
        return SmiycPixelResampler(None, ([ids[i] for i in order], [thr[i] for i in order],
                                          [tp[i] for i in order], [fp[i] for i in order]))

    def metrics(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        w = np.atleast_2d(weights)
        if not np.array_equal(w, np.floor(w)) or (w < 0).any():
            raise ValueError("SMIYC pixel replicates take frame multiplicities (non-negative integers)")
        out = {k: np.full(w.shape[0], np.nan) for k in ("auprc", "auroc", "fpr95", "best_f1")}
        P, N = w @ self.n_pos, w @ self.n_neg
        for i in range(w.shape[0]):
            if P[i] > 0 and N[i] > 0:
                for k, v in self._replicate(w[i], P[i], N[i]).items():
                    out[k][i] = v
        return out

    def _replicate(self, w: np.ndarray, P: float, N: float) -> dict[str, float]:
        """The four metrics of one row of frame weights (see the class notes for the formulas)."""
        a, b, g = self.A @ w, self.B @ w, self.G @ w
        # counts are integers: int64 running sums are exact, and ~5x faster than float ones
        TP = np.cumsum(a.astype(np.int64)).astype(np.float64)
        FP = np.cumsum(g[:-1].astype(np.int64)).astype(np.float64)
        roc = float(g[1:] @ TP) + 0.5 * float(a @ b)
        s = TP + FP
        k95 = _first_at_least(TP, P)
        fp95 = FP[k95] if k95 < TP.size else N          # no point reaches 0.95: FPR95 = 1
        ap = float(a @ (TP / np.maximum(s, 1.0)))        # s = 0 only where TP = a = 0
        s += P
        f1 = 2.0 * float(np.max(np.divide(TP, s, out=s), initial=0.0))
        # the stand-alone first point (T0, F0) in front of the top drawn threshold's column
        drawn = np.flatnonzero(w > 0)
        top = self.top_col[drawn].min()
        f0 = drawn[np.flatnonzero(self.top_col[drawn] == top)[0]]
        t0, e0 = self.top_tp[f0], self.top_fp[f0]
        tp_top, fp_top = _column_dot(self._col_tp, top, w), _column_dot(self._col_fp, top, w)
        prec_top = tp_top / (tp_top + fp_top) if tp_top + fp_top > 0 else 1.0
        prec0 = t0 / (t0 + e0) if t0 + e0 > 0 else 1.0
        return {"auprc": (ap + t0 * (prec0 - prec_top)) / P,
                "auroc": (roc + 0.5 * (fp_top * t0 - e0 * tp_top)) / (P * N),
                "fpr95": e0 / N if t0 / P >= 0.95 else float(fp95 / N),
                "best_f1": max(f1, 2.0 * t0 / (t0 + e0 + P))}


def _first_at_least(tp: np.ndarray, p: float, level: float = 0.95) -> int:
    """First ``k`` with ``tp[k] / p >= level`` (``tp`` non-decreasing), ``tp.size`` if none; the
    division decides, as on the materialised curve."""
    k = int(np.searchsorted(tp, level * p))
    while k > 0 and tp[k - 1] / p >= level:
        k = int(np.searchsorted(tp, tp[k - 1]))
    while k < tp.size and tp[k] / p < level:
        k = int(np.searchsorted(tp, tp[k], side="right"))
    return k


def _column_dot(m: sparse.csc_matrix, c: int, w: np.ndarray) -> float:
    """``m[:, c] . w`` without building the column."""
    lo, hi = m.indptr[c], m.indptr[c + 1]
    return float(m.data[lo:hi] @ w[m.indices[lo:hi]])


class ComponentResampler:
    """SegEval ``siou``, ``ppv``, ``siou_pred``, ``f1_mean``, ``f1_25/50/75`` of resampled frames (exact).

    The threshold stays the full-sample pixel ``best_f1_threshold`` the accumulator was built with
    (the components are not recomputed per replicate).  Frame ids are the update index (``#i``).
    """

    chunk: ClassVar[int] = 256

    def __init__(self, acc: SmiycComponentAccumulator | None, _cols: tuple | None = None) -> None:
        if _cols is None:
            f = len(acc.tp)
            sums = np.array([[float(np.sum(getattr(acc, k)[i])) for k in ("siou_gt", "prec_pred", "siou_pred")]
                             for i in range(f)], np.float64).reshape(f, 3)
            counts = np.array([[acc.siou_gt[i].size, acc.prec_pred[i].size] for i in range(f)],
                              np.float64).reshape(f, 2)
            taus = np.array([np.stack([acc.tp[i], acc.fn[i], acc.fp[i]]) for i in range(f)],
                            np.float64).reshape(f, 3 * TAUS.size)
            _cols = (_positional_ids(f), sums, counts, taus)
        self.frame_ids, self.sums, self.counts, self.taus = _cols

    def reordered(self, order: np.ndarray) -> "ComponentResampler":
        return ComponentResampler(None, ([self.frame_ids[i] for i in order], self.sums[order],
                                         self.counts[order], self.taus[order]))

    def metrics(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        w = np.atleast_2d(weights)
        s, c = w @ self.sums, w @ self.counts
        t = (w @ self.taus).reshape(w.shape[0], 3, TAUS.size)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = {"siou": s[:, 0] / c[:, 0], "ppv": s[:, 1] / c[:, 1], "siou_pred": s[:, 2] / c[:, 1]}
            denom = 2 * t[:, 0] + t[:, 1] + t[:, 2]
            f1 = np.where(denom > 0, 2 * t[:, 0] / denom, np.nan)
        out["f1_mean"] = f1.mean(1)
        for i in (0, 5, 10):
            out[f"f1_{int(round(TAUS[i] * 100))}"] = f1[:, i]
        return out


class PerImageResampler:
    """StreetHazards per-image mean ``auroc``, ``auprc``, ``fpr95`` over resampled images (exact).

    Skipped images (no anomaly or no inlier pixel) are frames too: drawing them adds nothing to the
    mean.  Frame ids are the accumulator's (used images first, then skipped ones).
    """

    chunk: ClassVar[int] = 1024
    _KEYS = ("auroc", "auprc", "fpr95")

    def __init__(self, acc: HendrycksPerImageAccumulator | None, _cols: tuple | None = None) -> None:
        if _cols is None:
            rows = np.array(acc.rows, np.float64).reshape(-1, 3)
            skipped = len(acc.skipped_ids)
            rows = np.vstack([rows, np.zeros((skipped, 3))])
            used = np.r_[np.ones(len(acc.rows)), np.zeros(skipped)]
            _cols = (list(acc.frame_ids) + list(acc.skipped_ids), rows, used)
        self.frame_ids, self.rows, self.used = _cols

    def reordered(self, order: np.ndarray) -> "PerImageResampler":
        return PerImageResampler(None, ([self.frame_ids[i] for i in order], self.rows[order],
                                        self.used[order]))

    def metrics(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        w = np.atleast_2d(weights)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = (w @ self.rows) / (w @ self.used)[:, None]
        return {k: mean[:, i] for i, k in enumerate(self._KEYS)}



def _nanmean(x: np.ndarray) -> np.ndarray:
    """``nanmean`` over the last axis, NaN (no warning) where every entry is NaN."""
    fin = np.isfinite(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(fin, x, 0.0).sum(-1) / fin.sum(-1)


class OpenSetResampler:
    """``open_miou``, ``open_miou_<g>``, ``anomaly_iou_<g>`` and ``closed_miou`` of resampled frames.

    The thresholds stay the full-sample ones the :class:`~.segmentation.OpenSetFrameCounts` were
    counted at (the calibration is not redone per replicate).  Per group ``g`` the drawn frames'
    ``(K + 1)``-class counts give ``IoU``, ``open_miou_<g> = nanmean(IoU[:K])`` and
    ``anomaly_iou_<g> = IoU[K]``; ``open_miou = sum_g n_g miou_g / sum_g n_g`` with ``n_g`` the
    number of drawn frames of ``g`` (the image-count weighting of the protocol).  A group with no
    drawn frame is left out of ``open_miou`` (it is then the other group's value) and its own
    values are NaN; every other undefined value is NaN as on the full sample.  ``closed_miou``
    pools the drawn frames' known-class counts of both groups.  Frame ids are the accumulator's.
    """

    chunk: ClassVar[int] = 1024

    def __init__(self, acc: OpenSetFrameCounts | None, _cols: tuple | None = None) -> None:
        if _cols is None:
            k, f = acc.num_known, len(acc.frame_ids)
            names = sorted(acc.thresholds)
            member = np.zeros((f, len(names)), np.float64)
            member[np.arange(f), [names.index(g) for g in acc.groups]] = 1.0
            _cols = (list(acc.frame_ids), names, member,
                     np.array(acc.open_counts, np.float64).reshape(f, 3 * (k + 1)),
                     np.array(acc.closed_counts, np.float64).reshape(f, 3 * k))
        self.frame_ids, self.group_names, self.member, self.open_counts, self.closed_counts = _cols

    def reordered(self, order: np.ndarray) -> "OpenSetResampler":
        return OpenSetResampler(None, ([self.frame_ids[i] for i in order], self.group_names,
                                       self.member[order], self.open_counts[order], self.closed_counts[order]))

    def metrics(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        w = np.atleast_2d(weights)
        r = w.shape[0]
        k1 = self.open_counts.shape[1] // 3
        out: dict[str, np.ndarray] = {}
        n = w @ self.member                                   # r x G drawn frames per group
        mious = np.empty((r, len(self.group_names)))
        for j, g in enumerate(self.group_names):
            tp, fp, fn = ((w * self.member[:, j]) @ self.open_counts).reshape(r, 3, k1).transpose(1, 0, 2)
            with np.errstate(divide="ignore", invalid="ignore"):
                iou = tp / (tp + fp + fn)
            mious[:, j] = _nanmean(iou[:, :-1])
            out[f"open_miou_{g}"] = mious[:, j]
            out[f"anomaly_iou_{g}"] = iou[:, -1]
        drawn = n > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            out["open_miou"] = np.where(drawn, n * mious, 0.0).sum(1) / n.sum(1)
        tp, pred, gt = (w @ self.closed_counts).reshape(r, 3, -1).transpose(1, 0, 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            out["closed_miou"] = _nanmean(tp / (pred + gt - tp))
        return out
