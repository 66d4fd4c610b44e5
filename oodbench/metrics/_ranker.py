"""Rank many negative scores among few distinct positive scores without sorting the negatives.

For distinct positive values ``x_0 < ... < x_{m-1}`` every negative ``v`` gets the code
``2a - e`` with ``a = #{x_j <= v}`` and ``e = [v == x_{a-1}]``; a histogram of the codes (length
``2m + 1``) gives ``#{neg >= x_j}`` and ``#{neg > x_j}`` for all ``j`` at once.

Why not ``np.searchsorted``: a binary search per negative costs ~100 ns here, and sorting the
negatives (numpy's default AVX-512 sort) ~30-45 ns per element on this machine kind.  Instead the
order-preserving integer keys of the positives (:func:`~._inputs.score_keys`) are bucketed by
their high bits into a lookup table of at most ``2**22`` entries; a negative in a bucket without
positives reads its code from the table, the few in buckets holding positives are resolved by a
short vectorised linear scan over that bucket's positives.  Work is O(n) with chunk-sized
temporaries (constant memory).
"""
from __future__ import annotations

import numpy as np

from ._inputs import score_keys

__all__ = ["Ranker"]

_CHUNK = 1 << 18


class Ranker:
    """Code negatives against the distinct positive values ``pos_values`` (ascending)."""

    def __init__(self, pos_values: np.ndarray, n_hint: int) -> None:
        if pos_values.dtype not in (np.float32, np.float64):  # pragma: no cover - internal
            raise TypeError(pos_values.dtype)
        self.dtype = pos_values.dtype
        self.m = int(pos_values.size)
        keys = score_keys(np.ascontiguousarray(pos_values))
        self.key_dtype = keys.dtype
        big = np.iinfo(self.key_dtype).max                   # NaN key: never equal to a score key
        self.keys_ext = np.append(keys, self.key_dtype.type(big))
        kmin, kmax = int(keys[0]), int(keys[-1])
        lut_max = int(min(1 << 22, max(1 << 12, n_hint // 4, 4 * self.m)))
        shift = 2
        while ((kmax >> shift) - (kmin >> shift) + 3) > lut_max:
            shift += 1
        self.shift = shift
        self.j0 = (kmin >> shift) - 1                         # bucket 0: below every positive
        n_buckets = (kmax >> shift) - self.j0 + 2             # last bucket: above every positive
        pos_bucket = (keys >> shift).astype(np.int64) - self.j0
        cnt = np.bincount(pos_bucket, minlength=n_buckets)
        a_lo = np.cumsum(cnt) - cnt                           # positives in lower buckets
        # code of a negative in a bucket without positives is 2*a_lo; flag the others as
        # -(2*a_lo) - 1 so that one gather gives both the code and whether to refine
        self.lut = np.where(cnt > 0, -(2 * a_lo) - 1, 2 * a_lo).astype(np.int64)
        self._kbuf = np.empty(_CHUNK, self.key_dtype)
        self._bbuf = np.empty(_CHUNK, np.intp)
        self._cbuf = np.empty(_CHUNK, np.int64)

    def histogram(self, neg: np.ndarray, hist: np.ndarray) -> None:
        """Add the codes of the scores ``neg`` (same dtype as the positives) into ``hist``."""
        flat = neg.reshape(-1)
        for start in range(0, flat.size, _CHUNK):
            hist += np.bincount(self.codes(flat[start:start + _CHUNK]), minlength=hist.size)

    def codes(self, v: np.ndarray) -> np.ndarray:
        n = v.size
        k = score_keys(v, out=self._kbuf[:n])
        b = self._bbuf[:n]
        np.subtract(np.right_shift(k, self.shift), self.j0, out=b, dtype=np.intp)
        c = np.take(self.lut, b, out=self._cbuf[:n], mode="clip")
        idx = np.flatnonzero(c < 0)
        if idx.size:
            kk = k[idx]
            a = (-c[idx] - 1) >> 1                            # first positive of the bucket
            keys_ext = self.keys_ext
            active = np.arange(idx.size)
            while active.size:
                step = keys_ext[a[active]] <= kk[active]      # positives are sorted in a bucket
                active = active[step]
                a[active] += 1
            eq = (a > 0) & (keys_ext[a - 1] == kk)
            c[idx] = 2 * a - eq
        return c
