"""Per-frame score histograms for the frame bootstrap of the pooled protocols (``exact``, ``fishyscapes``).

The exact accumulators pool raw scores, so a resampled data set cannot be rebuilt from their state.
:class:`FrameCollector` keeps, per frame, the sparse histogram of 19-bit order-preserving score
codes split by label (a few thousand ``(key, count)`` pairs per frame, whatever the frame size),
collected in the evaluator's single pass without global bin edges.  After the pass,
:meth:`FrameCollector.binned` chooses at most ``max_bins`` bins from the pooled distribution and
densifies the histograms into two ``F x B`` matrices (anomaly / inlier counts per frame and bin);
a bootstrap replicate with frame multiplicities ``w`` is then ``w @ P``, ``w @ N`` and a block of
replicates costs one matrix product.  AP, AUROC and FPR95 (every rule of :mod:`._curves`) are
computed from the cumulative bin counts, vectorised over replicates (:func:`binned_curve_metrics`).

What is exact and what is binned:

* Score code: the float32 order key (:func:`~._inputs.score_keys`) without its lowest
  ``23 - mantissa_bits`` bits -- sign, the 8 exponent bits and the top ``mantissa_bits`` mantissa
  bits (default 13).  For ``mantissa_bits >= 10`` it is a bijection on finite float16 values
  (``-0.0`` merged into ``+0.0``, as the exact accumulator merges ties), so **float16 scores are
  coded exactly**; float32/float64 scores are grouped into runs of relative width
  ``2**-mantissa_bits`` (pixels of one run count as tied; 23 = exact float32, at the price of a
  per-frame state as large as the number of distinct scores), float64 first rounded to float32
  (overflow raises).
* Bins: when the pooled data hold at most ``max_bins`` distinct codes every code is a bin, and the
  binned metrics equal the exact accumulator's (float16 input: to float rounding, ~1e-15).
  Otherwise consecutive codes are merged at the union of ``max_bins / 2`` pooled anomaly-count
  quantiles and ``max_bins / 2`` pooled inlier-count quantiles, so each class keeps resolution where
  its own mass is (the SMIYC idea, applied once to the pooled data).  Pixels in one bin count as
  tied.  The binning error (binned vs exact full-sample value) is reported by
  ``benchmarks/bench_bootstrap.py`` and checked in the tests.
* The bins are fixed from the full sample and shared by all replicates (the bootstrap resamples
  frames, not bin edges).
"""
from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np

from ._base import Accumulator, MetricInputError
from ._curves import F16_NONFINITE, FPR_RULES
from ._inputs import check_pair, check_scores, label_counts, score_keys

__all__ = ["FrameCollector", "BinnedFrames", "binned_curve_metrics", "score_codes"]

_PLANE = np.full(256, 2, np.int32)        # label -> plane (0 inlier, 1 anomaly, 2 void / invalid)
_PLANE[0], _PLANE[1] = 0, 1
_PLANE16 = (_PLANE << 16).astype(np.int32)
DEFAULT_MAX_BINS = 16384
_DENSE_CODES = 1 << 24                    # pooled code ranges below this use dense tables
DEFAULT_MANTISSA_BITS = 13
_DENSE_SPAN = 1 << 21                     # per-frame code spans above this use a sort, not a bincount
_DENSE_MIN = 1 << 14                      # ... and spans above this *and* above 2 x the pixel count


def score_codes(scores: np.ndarray, mantissa_bits: int, where: str) -> np.ndarray:
    """Order-preserving int32 codes of finite float scores: float32 order key without its lowest
    ``23 - mantissa_bits`` bits (see the module notes)."""
    s = scores.reshape(-1)
    if s.dtype != np.float32:
        s = s.astype(np.float32)
        if s.size and not (np.isfinite(s.min()) and np.isfinite(s.max())):
            raise MetricInputError(f"{where}: float64 scores overflow float32 (rescale them)")
    keys = score_keys(np.ascontiguousarray(s))
    return np.right_shift(keys, 23 - mantissa_bits, out=keys)


def _f16_code_table(mantissa_bits: int) -> np.ndarray:
    """Collector code of every float16 bit pattern (non-finite patterns get a code too; the
    caller has rejected them)."""
    v = np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float32)
    v[~np.isfinite(v)] = 0
    return score_codes(v, mantissa_bits, "float16 table").astype(np.int64)


class FrameCollector(Accumulator):
    """Per-frame sparse score histograms by label (state for the frame bootstrap of pooled metrics).

    ``update(scores, labels, frame_id)`` once per frame in the evaluation pass (the same inputs as
    :class:`~.pixel.ExactPixelAccumulator`); ``merge`` / ``merge_states`` join shards (frames are
    concatenated in shard order; ``frame_id`` identifies them for paired comparisons).
    :func:`oodbench.metrics.bootstrap.bootstrap_ci` takes it directly.

    Args:
        fpr_rule: the FPR95 rule of the protocol being bootstrapped (:data:`~._curves.FPR_RULES`).
        max_bins: at most this many bins after the pass (see the module notes).

    State: ``frame_ids`` (one string per frame), ``keys`` / ``counts`` (per frame, ragged:
    ``code * 2 + label`` and its pixel count, nonzero entries only), ``n_void`` (sum).
    """

    name: ClassVar[str] = "frame-histograms"
    version: ClassVar[str] = "1"

    def __init__(self, fpr_rule: str = "first_tpr_ge", max_bins: int = DEFAULT_MAX_BINS,
                 mantissa_bits: int = DEFAULT_MANTISSA_BITS) -> None:
        if fpr_rule not in FPR_RULES:
            raise ValueError(f"unknown fpr_rule {fpr_rule!r}; choose one of {FPR_RULES}")
        if int(max_bins) < 2:
            raise ValueError(f"max_bins must be >= 2, got {max_bins}")
        if not 10 <= int(mantissa_bits) <= 23:
            raise ValueError(f"mantissa_bits must be 10..23 (10: float16 precision, 23: exact "
                             f"float32), got {mantissa_bits}")
        self.fpr_rule = fpr_rule
        self.max_bins = int(max_bins)
        self.mantissa_bits = int(mantissa_bits)
        super().__init__()
        self.add_state("frame_ids", [], merge="cat", dtype=str, item_shape=())
        self.add_state("keys", [], merge="cat", dtype=np.int64)
        self.add_state("counts", [], merge="cat", dtype=np.int32)
        self.add_state("n_void", 0, merge="sum")
        self._f16_codes: np.ndarray | None = None

    def _config(self) -> dict[str, Any]:
        return {"fpr_rule": self.fpr_rule, "max_bins": self.max_bins,
                "mantissa_bits": self.mantissa_bits}

    def update(self, scores: Any, labels: Any, frame_id: Any = None) -> None:
        """Add one frame: float scores (higher = more anomalous), labels 0/1/255 of the same shape."""
        where = self._frame_name(frame_id)
        s, lab = check_pair(scores, labels, where, check_finite=False)
        lab = lab.reshape(-1)
        counts = label_counts(lab, where)
        if s.dtype == np.float16:
            # one bincount over (plane, float16 bits), then the codes of the present values
            h = np.bincount(np.take(_PLANE16, lab) + s.reshape(-1).view(np.uint16), minlength=3 << 16)
            if h.reshape(3, 65536)[:, F16_NONFINITE].any():
                raise MetricInputError(f"{where}: scores contain NaN or infinite values")
            nz = np.flatnonzero(h[: 2 << 16])
            if self._f16_codes is None:
                self._f16_codes = _f16_code_table(self.mantissa_bits)
            plane, bits = np.divmod(nz, 1 << 16)
            keys, n = _merge_keys(self._f16_codes[bits] * 2 + plane, h[nz])
        else:
            s = check_scores(s, where)
            keys, n = _sparse_hist(score_codes(s, self.mantissa_bits, where), np.take(_PLANE, lab))
        self.keys.append(keys)
        self.counts.append(n.astype(np.int32))
        self.frame_ids.append(str(frame_id) if frame_id is not None else f"#{self._num_updates}")
        self.n_void += int(counts[255])
        self._num_updates += 1

    def binned(self, max_bins: int | None = None) -> "BinnedFrames":
        """The ``F x B`` per-frame bin counts (bins chosen from the pooled data, see module notes)."""
        return BinnedFrames.from_sparse(self.keys, self.counts, list(self.frame_ids), self.fpr_rule,
                                        self.max_bins if max_bins is None else int(max_bins))

    def compute(self) -> dict[str, Any]:
        """The binned full-sample ``auprc``, ``auroc``, ``fpr95`` (as every replicate computes them)."""
        b = self.binned()
        point = {k: float(v[0]) for k, v in b.metrics(np.ones((1, b.num_frames))).items()}
        return self._result({"fpr_rule": self.fpr_rule, **point, "num_bins": float(b.num_bins),
                             "num_frames": float(b.num_frames),
                             "num_anomaly_pixels": float(b.pos.sum()),
                             "num_inlier_pixels": float(b.neg.sum()),
                             "num_void_pixels": float(self.n_void)})


def _merge_keys(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum counts of equal keys (+0.0 and -0.0 share a code)."""
    u, inv = np.unique(keys, return_inverse=True)
    return u, np.bincount(inv, weights=counts, minlength=u.size).astype(np.int64)


def _sparse_hist(codes: np.ndarray, plane: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nonzero ``(code * 2 + plane, count)`` pairs of one frame, plane 2 (void) dropped."""
    if not codes.size:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    cmin = int(codes.min())
    span = int(codes.max()) - cmin + 1
    if span <= _DENSE_MIN or (span <= _DENSE_SPAN and span <= 2 * codes.size):
        key = plane.astype(np.int32) * np.int32(span)
        key += codes
        key -= np.int32(cmin)
        h = np.bincount(key, minlength=3 * span)[: 2 * span]
        nz = np.flatnonzero(h)
        pl, c = np.divmod(nz, span)
        return (c + cmin).astype(np.int64) * 2 + pl, h[nz]
    keep = plane < 2
    u, n = np.unique(codes[keep].astype(np.int64) * 2 + plane[keep], return_counts=True)
    return u, n


def _bin_of_codes(pos: np.ndarray, neg: np.ndarray, max_bins: int) -> np.ndarray:
    """Bin index (0..B-1, ascending score) of every present code (pooled counts ``pos``/``neg``)."""
    n = pos.size
    if n <= max_bins:
        return np.arange(n)
    starts = np.zeros(n, bool)
    starts[0] = True
    for counts, share in ((pos, max_bins // 2), (neg, max_bins - max_bins // 2)):
        total = counts.sum()
        if total == 0:
            continue
        before = np.concatenate([[0.0], np.cumsum(counts, dtype=np.float64)[:-1]])
        q = np.floor(before * share / total)              # quantile slot of each code
        starts[1:] |= q[1:] != q[:-1]
    return np.cumsum(starts) - 1


class BinnedFrames:
    """Anomaly / inlier counts per frame and bin (``pos``, ``neg``: ``F x B`` float64, bins ascending)."""

    chunk: ClassVar[int] = 64        # replicates per matrix product (bounds the R x B temporaries)

    def __init__(self, pos: np.ndarray, neg: np.ndarray, frame_ids: Sequence[str], fpr_rule: str) -> None:
        self.pos, self.neg = pos, neg
        self.frame_ids = list(frame_ids)
        self.fpr_rule = fpr_rule

    @property
    def num_frames(self) -> int:
        return self.pos.shape[0]

    @property
    def num_bins(self) -> int:
        return self.pos.shape[1]

    @classmethod
    def from_sparse(cls, keys: Sequence[np.ndarray], counts: Sequence[np.ndarray],
                    frame_ids: Sequence[str], fpr_rule: str, max_bins: int) -> "BinnedFrames":
        f = len(keys)
        lo = min((int(k.min()) >> 1 for k in keys if k.size), default=0)
        hi = max((int(k.max()) >> 1 for k in keys if k.size), default=0)
        if hi - lo < _DENSE_CODES:
            # codes span a modest range: dense tables, one frame at a time (no global sort)
            size = hi - lo + 1
            pooled = np.zeros(2 * size)
            for k, c in zip(keys, counts):
                pooled += np.bincount((k & 1) * size + (k >> 1) - lo, weights=c, minlength=2 * size)
            pooled = pooled.reshape(2, size)
            codes = np.flatnonzero(pooled.sum(0)) + lo
            lut = np.full(hi - lo + 1, -1, np.int64)
            bins = _bin_of_codes(pooled[1, codes - lo], pooled[0, codes - lo], max_bins)
            lut[codes - lo] = bins

            def bin_of(k: np.ndarray) -> np.ndarray:
                return lut[(k >> 1) - lo]
        else:
            codes = np.unique(np.concatenate([k >> 1 for k in keys]))
            pooled = np.zeros((2, codes.size))
            for k, c in zip(keys, counts):
                pooled += np.bincount((k & 1) * codes.size + np.searchsorted(codes, k >> 1), weights=c,
                                      minlength=2 * codes.size).reshape(2, -1)
            bins = _bin_of_codes(pooled[1], pooled[0], max_bins)

            def bin_of(k: np.ndarray) -> np.ndarray:
                return bins[np.searchsorted(codes, k >> 1)]
        nb = int(bins[-1]) + 1 if bins.size else 0
        mats = [np.zeros((f, nb)), np.zeros((f, nb))]       # anomaly, inlier
        for i, (k, c) in enumerate(zip(keys, counts)):
            b, pos = bin_of(k), (k & 1).astype(bool)
            mats[0][i] = np.bincount(b[pos], weights=c[pos], minlength=nb)
            mats[1][i] = np.bincount(b[~pos], weights=c[~pos], minlength=nb)
        return cls(mats[0], mats[1], frame_ids, fpr_rule)

    def reordered(self, order: np.ndarray) -> "BinnedFrames":
        return BinnedFrames(self.pos[order], self.neg[order], [self.frame_ids[i] for i in order],
                            self.fpr_rule)

    def metrics(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """``auprc``, ``auroc``, ``fpr95`` of each row of frame multiplicities ``weights`` (r x F)."""
        return binned_curve_metrics(weights @ self.pos, weights @ self.neg, self.fpr_rule)


def binned_curve_metrics(pos: np.ndarray, neg: np.ndarray, fpr_rule: str = "first_tpr_ge",
                         level: float = 0.95) -> dict[str, np.ndarray]:
    """AP / AUROC / FPR95 of ``r`` binned data sets at once (``pos``, ``neg``: r x B, bins ascending).

    Same formulas as :class:`~._curves.CurveSummary` with every bin one tied score value; NaN where a
    row has no anomaly or no inlier pixel.
    """
    pos = np.atleast_2d(pos)
    neg = np.atleast_2d(neg)
    n_pos, n_neg = pos.sum(1), neg.sum(1)
    tp = np.cumsum(pos[:, ::-1], 1)[:, ::-1]           # #{pos >= bin}
    ge = np.cumsum(neg[:, ::-1], 1)[:, ::-1]           # #{neg >= bin}
    with np.errstate(divide="ignore", invalid="ignore"):
        prec = np.where(pos > 0, tp / (tp + ge), 0.0)
        ap = np.sum(pos * prec, 1) / n_pos
        auroc = np.sum(pos * (2.0 * (n_neg[:, None] - ge) + neg), 1) / (2.0 * n_pos * n_neg)
        tpr = tp / n_pos[:, None]
        fpr = _fpr(pos, neg, tp, ge, tpr, n_pos, n_neg, fpr_rule, level)
    bad = (n_pos == 0) | (n_neg == 0)
    for a in (ap, auroc, fpr):
        a[bad] = np.nan
    return {"auprc": ap, "auroc": auroc, "fpr95": fpr}


def _fpr(pos, neg, tp, ge, tpr, n_pos, n_neg, rule: str, level: float) -> np.ndarray:
    rows = np.arange(pos.shape[0])
    if rule == "first_tpr_ge":
        # {bins: tpr >= level} is a prefix (tp is non-increasing); its last bin holds positives
        j = np.maximum(np.count_nonzero(tpr >= level, 1) - 1, 0)
        return ge[rows, j] / n_neg
    if rule == "nearest_recall":
        d = np.where(pos > 0, np.abs(tpr - level), np.inf)
        j = np.argmin(d, 1)                                # first minimum = lowest threshold
        idx = np.where(pos > 0, np.arange(pos.shape[1]), -1)
        last = np.maximum.accumulate(idx, 1)               # last positive bin at or below each bin
        prev = np.where(j > 0, last[rows, np.maximum(j - 1, 0)], -1)
        fp = np.where(prev >= 0, ge[rows, np.minimum(prev + 1, pos.shape[1] - 1)], ge[rows, j])
        return fp / n_neg
    if rule == "first_tpr_gt":
        out = np.full(pos.shape[0], np.nan)
        for r in rows:
            if n_pos[r] == 0 or n_neg[r] == 0:
                continue
            out[r] = _first_tpr_gt(pos[r], neg[r], n_pos[r], n_neg[r], level)
        return out
    raise ValueError(f"unknown fpr_rule {rule!r}; choose one of {FPR_RULES}")


def _first_tpr_gt(pos: np.ndarray, neg: np.ndarray, n_pos: float, n_neg: float, level: float) -> float:
    """sklearn ``roc_curve(drop_intermediate=True)``, then the first point with TPR > level."""
    present = np.flatnonzero((pos + neg) > 0)[::-1]         # thresholds, descending
    tps = np.cumsum(pos[present])
    fps = np.cumsum(neg[present])
    keep = np.ones(present.size, bool)
    if present.size > 2:
        keep[1:-1] = (np.diff(tps, 2) != 0) | (np.diff(fps, 2) != 0)
    ok = keep & (tps / n_pos > level)
    return float(fps[int(np.argmax(ok))] / n_neg)
