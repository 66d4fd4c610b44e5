"""Exact, mergeable storage of scored pixels split by label, and its curve summary.

(Named ``_score_store`` so it is not confused with :mod:`oodbench.store`, the on-disk prediction store.)

* float16 scores: one histogram over the 65,536 float16 bit patterns per class (exact, constant
  memory; what SMIYC stores).  Built chunk-wise with preallocated buffers: key =
  ``label_plane * 65536 + bits`` and one ``np.bincount`` per chunk; the same pass validates the
  labels (plane 3 = any label other than 0/1/255) and the scores (NaN/inf bit patterns).
* float32 / float64 scores: the scores of each class are kept as they are (4 or 8 bytes per
  evaluated pixel; never rounded).  ``summary()`` ranks the negatives among the distinct positive
  values with :class:`~._ranker.Ranker` (no sort of the negatives).

State entries (declared with their merge rules, :mod:`._state`): ``h16`` (2 x 65536 int64, sum),
``n_void`` (sum), ``pos32``/``neg32``/``pos64``/``neg64`` (ragged 1-D arrays, concatenated).
"""
from __future__ import annotations

import numpy as np

from ._base import MetricInputError
from ._curves import F16_CODES_ASC, F16_NONFINITE, F16_VALUES_ASC, CurveSummary, fold_f16
from ._inputs import label_counts
from ._ranker import Ranker
from ._state import StateSet

__all__ = ["ScoreStore"]

_F16_CHUNK = 1 << 20
_PLANE = np.full(256, 3 << 16, dtype=np.intp)          # label -> key offset; 3 = invalid label
_PLANE[0], _PLANE[1], _PLANE[255] = 0, 1 << 16, 2 << 16


_RAW_DTYPES = {"pos32": np.float32, "neg32": np.float32, "pos64": np.float64, "neg64": np.float64}


class ScoreStore(StateSet):
    """Pooled scores of anomaly (positive) and inlier (negative) pixels; void is only counted."""

    def __init__(self) -> None:
        self.add_state("h16", np.zeros((2, 65536), np.int64), merge="sum")
        self.add_state("n_void", 0, merge="sum")
        for key, dtype in _RAW_DTYPES.items():
            self.add_state(key, [], merge="cat", dtype=dtype)
        self._kbuf: np.ndarray | None = None

    @property
    def raw(self) -> dict[str, list[np.ndarray]]:
        """The float32/float64 scores by class: ``{"pos32": [...], "neg32": ..., ...}`` (live lists)."""
        return {key: getattr(self, key) for key in _RAW_DTYPES}

    # -- update -------------------------------------------------------------------------------
    def add(self, scores: np.ndarray, labels: np.ndarray, where: str) -> None:
        """Add one frame (validated shapes; labels uint8; scores floating)."""
        s = scores.reshape(-1)
        lab = labels.reshape(-1)
        if s.dtype == np.float16:
            self._add_f16(s, lab, where)
        elif s.dtype in (np.float32, np.float64):
            counts = label_counts(lab, where)
            if s.size and not (np.isfinite(s.min()) and np.isfinite(s.max())):
                raise MetricInputError(
                    f"{where}: scores contain {int(np.isnan(s).sum())} NaN and "
                    f"{int(np.isinf(s).sum())} infinite values")
            tag = "32" if s.dtype == np.float32 else "64"
            if counts[1]:
                self.raw["pos" + tag].append(s[lab == 1])
            if counts[0]:
                self.raw["neg" + tag].append(s[lab == 0])
            self.n_void += int(counts[255])
        else:
            raise MetricInputError(f"{where}: unsupported score dtype {s.dtype} (use float16/32/64)")

    def _add_f16(self, s: np.ndarray, lab: np.ndarray, where: str) -> None:
        bits = s.view(np.uint16)
        if self._kbuf is None:
            self._kbuf = np.empty(_F16_CHUNK, np.intp)
        hist = np.zeros(4 << 16, np.int64)
        for start in range(0, s.size, _F16_CHUNK):
            lb = lab[start:start + _F16_CHUNK]
            k = self._kbuf[:lb.size]
            np.take(_PLANE, lb, out=k)
            np.add(k, bits[start:start + _F16_CHUNK], out=k)
            part = np.bincount(k, minlength=3 << 16)      # grows to 4 planes only on bad labels
            hist[:part.size] += part
        hist = hist.reshape(4, 65536)
        if hist[3].any():
            bad = np.unique(lab[_PLANE[lab] == 3 << 16])
            raise MetricInputError(
                f"{where}: unexpected label values {bad[:10].tolist()} ({int(hist[3].sum())} "
                "pixels); allowed are 0 (inlier), 1 (anomaly), 255 (ignore)")
        bad_scores = hist[:3, F16_NONFINITE]
        if bad_scores.any():
            nan_mask = F16_NONFINITE & ((np.arange(65536) & 0x3FF) != 0)
            n_nan = int(hist[:3, nan_mask].sum())
            raise MetricInputError(
                f"{where}: scores contain {n_nan} NaN and {int(bad_scores.sum()) - n_nan} "
                "infinite values (float16 overflows above 65504: rescale before casting)")
        self.h16 += hist[:2]
        self.n_void += int(hist[2].sum())

    # -- state: reset_state / state_items / load_state_items / merge_from (StateSet) ----------
    def compact(self) -> None:
        """Replace the per-frame lists by one array each (same state, fewer objects)."""
        for k, lst in self.raw.items():
            if len(lst) > 1:
                setattr(self, k, [np.concatenate(lst)])

    @property
    def n_pos(self) -> int:
        return int(self.h16[1].sum()) + sum(a.size for k in ("pos32", "pos64") for a in self.raw[k])

    @property
    def n_neg(self) -> int:
        return int(self.h16[0].sum()) + sum(a.size for k in ("neg32", "neg64") for a in self.raw[k])

    # -- summary ------------------------------------------------------------------------------
    def summary(self) -> CurveSummary:
        """The :class:`CurveSummary` of everything stored (exact)."""
        wide = bool(self.raw["pos64"] or self.raw["neg64"])
        dom = np.float64 if wide else np.float32
        h = fold_f16(self.h16)[:, F16_CODES_ASC]            # counts in ascending value order
        # distinct positive values with counts
        parts_v, parts_c = [], []
        nz = np.flatnonzero(h[1])
        if nz.size:
            parts_v.append(F16_VALUES_ASC[nz].astype(dom))
            parts_c.append(h[1, nz])
        for k in ("pos32", "pos64"):
            if self.raw[k]:
                v = np.sort(np.concatenate(self.raw[k]).astype(dom, copy=False))
                parts_v.append(v)
                parts_c.append(np.ones(v.size, np.int64))
        n_pos, n_neg = self.n_pos, self.n_neg
        if n_pos == 0 or n_neg == 0:
            return CurveSummary(np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64),
                                np.zeros(0, np.int64), n_pos, n_neg)
        v = np.concatenate(parts_v)
        c = np.concatenate(parts_c)
        if len(parts_v) > 1:
            o = np.argsort(v, kind="stable")
            v, c = v[o], c[o]
        first = np.concatenate([[True], v[1:] != v[:-1]])     # -0.0 == +0.0 merges too
        starts = np.flatnonzero(first)
        values = v[starts]
        values[values == 0] = 0.0                             # normalise -0.0
        pos = np.add.reduceat(c, starts)
        m = values.size
        hist = np.zeros(2 * m + 1, np.int64)
        # float16 negatives: few distinct values, rank them with searchsorted
        nzn = np.flatnonzero(h[0])
        if nzn.size:
            nv = F16_VALUES_ASC[nzn]
            vals64 = values.astype(np.float64)
            a = np.searchsorted(vals64, nv, side="right")
            eq = (a > 0) & (vals64[np.maximum(a - 1, 0)] == nv)
            np.add.at(hist, 2 * a - eq, h[0, nzn])
        raws = [r for k in ("neg32", "neg64") for r in self.raw[k]]
        if raws:
            ranker = Ranker(values.astype(dom), n_hint=sum(r.size for r in raws))
            for r in raws:
                ranker.histogram(r.astype(dom, copy=False), hist)
        tail = np.concatenate([np.cumsum(hist[::-1])[::-1], [0]])   # tail[t] = sum(hist[t:])
        ge = tail[1:2 * m:2]
        gt = tail[2:2 * m + 1:2]
        return CurveSummary(values.astype(np.float64), pos, ge, gt, n_pos, n_neg,
                            neg_in_range=self._neg_in_range)

    def _neg_in_range(self, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
        """Distinct negative values in ``[lo, hi]`` (ascending, float64) and their counts."""
        h = fold_f16(self.h16)[0, F16_CODES_ASC]
        sel = (F16_VALUES_ASC >= lo) & (F16_VALUES_ASC <= hi) & (h > 0)
        vs = [F16_VALUES_ASC[sel]]
        cs = [h[sel]]
        for k in ("neg32", "neg64"):
            for r in self.raw[k]:
                x = r[(r >= lo) & (r <= hi)].astype(np.float64)
                if x.size:
                    u, cnt = np.unique(x, return_counts=True)
                    vs.append(u)
                    cs.append(cnt)
        v = np.concatenate(vs)
        c = np.concatenate(cs).astype(np.int64)
        if v.size == 0:
            return v, c
        u, inv = np.unique(v, return_inverse=True)
        return u, np.bincount(inv, weights=c, minlength=u.size).astype(np.int64)
