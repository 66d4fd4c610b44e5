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

    A replicate concatenates each frame's bin table as often as the frame was drawn and builds the
    official pooled curve (:mod:`.smiyc`).  One detail is approximated: when several drawn rows
    share the top threshold, the official curve's stand-alone first point takes one of them in
    numpy 1.23 argsort order; here it takes the first drawn frame's row (it moves the first curve
    point only).  Frame ids are the ``order=`` positions when every frame has one, else the update
    index (``#i``).
    """

    chunk: ClassVar[int] = 8

    def __init__(self, acc: SmiycPixelAccumulator, _rows: tuple | None = None) -> None:
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
        flat = np.concatenate(thr) if f else np.zeros(0)
        u, inv = np.unique(flat, return_inverse=True)
        col = (u.size - 1 - inv).astype(np.int64)            # column 0 = highest threshold
        row = np.repeat(np.arange(f), [a.size for a in thr])
        shape = (f, u.size)
        self.thresholds_desc = u[::-1]
        self.S_tp = sparse.csr_matrix((np.concatenate(tp).astype(np.float64), (row, col)), shape=shape)
        self.S_fp = sparse.csr_matrix((np.concatenate(fp).astype(np.float64), (row, col)), shape=shape)
        # per frame: its highest threshold (tables are stored in descending order) and that row
        starts = np.cumsum([0] + [a.size for a in thr[:-1]]).astype(np.int64) if f else np.zeros(0, np.int64)
        self.top_col = col[starts]
        self.top_tp = np.array([a[0] for a in tp], np.float64)
        self.top_fp = np.array([a[0] for a in fp], np.float64)
        self.n_pos = np.array([a.sum() for a in tp], np.float64)
        self.n_neg = np.array([a.sum() for a in fp], np.float64)

    def reordered(self, order: np.ndarray) -> "SmiycPixelResampler":
        ids, thr, tp, fp = self._tables
        return SmiycPixelResampler(None, ([ids[i] for i in order], [thr[i] for i in order],
                                          [tp[i] for i in order], [fp[i] for i in order]))

    def metrics(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        w = np.atleast_2d(weights)
        out = {k: np.full(w.shape[0], np.nan) for k in ("auprc", "auroc", "fpr95", "best_f1")}
        tp_cols = np.asarray((self.S_tp.T @ w.T).T)        # r x U, descending thresholds
        fp_cols = np.asarray((self.S_fp.T @ w.T).T)
        P, N = w @ self.n_pos, w @ self.n_neg
        for r in range(w.shape[0]):
            if P[r] == 0 or N[r] == 0:
                continue
            drawn = np.flatnonzero(w[r] > 0)
            top = self.top_col[drawn].min()
            f0 = drawn[np.flatnonzero(self.top_col[drawn] == top)[0]]
            # columns without a drawn row repeat the previous curve point: no effect on the metrics
            TP = np.concatenate([[self.top_tp[f0]], np.cumsum(tp_cols[r, top:])])
            FP = np.concatenate([[self.top_fp[f0]], np.cumsum(fp_cols[r, top:])])
            vals = _smiyc_curve(TP, FP, P[r], N[r])
            for k in out:
                out[k][r] = vals[k]
        return out


def _smiyc_curve(TP: np.ndarray, FP: np.ndarray, P: float, N: float) -> dict[str, float]:
    """The curve summary of :meth:`.smiyc.SmiycPixelAccumulator.compute` (thresholds not needed)."""
    if TP[0] != 0 or FP[0] != 0:
        TP, FP = np.r_[0.0, TP], np.r_[0.0, FP]
    if TP[-1] != P or FP[-1] != N:  # pragma: no cover - every ROI pixel lies in some bin
        TP, FP = np.r_[TP, P], np.r_[FP, N]
    tpr, fpr = TP / P, FP / N
    npred = TP + FP
    precision = np.ones(TP.size)
    precision[npred > 0] = TP[npred > 0] / npred[npred > 0]
    f1 = (2 * TP) / (2 * TP + FP + (P - TP))
    k95 = int(np.searchsorted(tpr, 0.95))
    d = np.diff(fpr)
    return {"auprc": float(np.sum(np.diff(tpr) * precision[1:])),
            "auroc": float((d * (tpr[1:] + tpr[:-1]) / 2.0).sum()),
            "fpr95": float(fpr[k95]) if k95 < tpr.size else 1.0,
            "best_f1": float(np.nanmax(f1))}


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
