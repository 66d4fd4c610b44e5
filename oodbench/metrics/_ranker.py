"""Rank many negative scores among few distinct positive scores without sorting the negatives.

For distinct positive values ``x_0 < ... < x_{m-1}`` every negative ``v`` gets the code
``2a - e`` with ``a = #{x_j <= v}`` and ``e = [v == x_{a-1}]``; a histogram of the codes (length
``2m + 1``) gives ``#{neg >= x_j}`` and ``#{neg > x_j}`` for all ``j`` at once.

Why not ``np.searchsorted``: a binary search per negative costs ~100 ns here, and sorting the
negatives (numpy's default AVX-512 sort) ~30-45 ns per element on this machine kind.  Instead the
order-preserving integer keys of the positives (:func:`~._inputs.score_keys`) are bucketed by
their high bits into a lookup table of at most ``2**22`` entries; a negative in a bucket without
positives reads its code from that table, one in a bucket holding positives reads it from a second
table that lists the code of every key of the occupied buckets (or, when that table would be too
large, resolves it by a short vectorised scan over the bucket's positives).  Work is O(n) with
chunk-sized temporaries (constant memory).
"""
from __future__ import annotations

import numpy as np

from ._inputs import score_keys

__all__ = ["Ranker"]

_CHUNK = 1 << 20
_LUT_MAX = 1 << 22
_L2_MAX = 1 << 23


class Ranker:
    """Code negatives against the distinct positive values ``pos_values`` (ascending)."""

    def __init__(self, pos_values: np.ndarray, n_hint: int) -> None:
        if pos_values.dtype not in (np.float32, np.float64):  # pragma: no cover - internal
            raise TypeError(pos_values.dtype)
        self.m = int(pos_values.size)
        keys = score_keys(np.ascontiguousarray(pos_values))
        self.key_dtype = keys.dtype
        big = np.iinfo(self.key_dtype).max                   # NaN key: never equal to a score key
        self.keys_ext = np.append(keys, self.key_dtype.type(big))
        kmin, kmax = int(keys[0]), int(keys[-1])
        lut_max = int(min(_LUT_MAX, max(1 << 12, n_hint // 4, 4 * self.m)))
        shift = 2
        while ((kmax >> shift) - (kmin >> shift) + 3) > lut_max:
            shift += 1
        self.shift = shift
        self.j0 = (kmin >> shift) - 1                         # bucket 0: below every positive
        n_buckets = (kmax >> shift) - self.j0 + 2             # last bucket: above every positive
        pos_bucket = (keys >> shift).astype(np.int64) - self.j0   # sorted, in [1, n_buckets - 2]
        first = np.flatnonzero(np.r_[True, pos_bucket[1:] != pos_bucket[:-1]])
        occ = pos_bucket[first]                               # occupied buckets, ascending
        before = first                                        # positives below each occupied bucket
        width = 1 << shift
        code_t = np.int32 if 2 * self.m + 1 < 2**31 and occ.size * width < 2**31 else np.int64
        self.code_dtype = code_t
        # code of an empty bucket: 2 * #positives in lower buckets (piecewise constant)
        seg_len = np.diff(np.r_[0, occ + 1, n_buckets])
        seg_val = 2 * np.r_[0, before + np.diff(np.r_[first, self.m])]
        lut = np.repeat(seg_val.astype(code_t), seg_len)
        self.table = occ.size * width <= _L2_MAX
        if self.table:
            # every key of an occupied bucket gets its exact code 2a - e
            row = np.cumsum(np.r_[0, (pos_bucket[1:] != pos_bucket[:-1]).astype(np.int64)])
            hit = np.zeros((occ.size, width), code_t)
            hit[row, (keys & (width - 1)).astype(np.intp)] = 1
            self.l2 = (2 * (before.astype(code_t)[:, None] + np.cumsum(hit, axis=1, dtype=code_t))
                       - hit).ravel()
            lut[occ] = -1 - np.arange(occ.size, dtype=code_t)
        else:
            # flag occupied buckets as -(2*a_lo) - 1: resolved by a scan over their positives
            lut[occ] = -(2 * before.astype(code_t)) - 1
        self.lut = lut
        self._chunk = _CHUNK
        self._kbuf = np.empty(_CHUNK, self.key_dtype)
        self._bbuf = np.empty(_CHUNK, np.intp)
        self._cbuf = np.empty(_CHUNK, code_t)

    def histogram(self, neg: np.ndarray, hist: np.ndarray) -> None:
        """Add the codes of the scores ``neg`` (same dtype as the positives) into ``hist``."""
        flat = neg.reshape(-1)
        for start in range(0, flat.size, self._chunk):
            hist += np.bincount(self.codes(flat[start:start + self._chunk]), minlength=hist.size)

    def codes(self, v: np.ndarray) -> np.ndarray:
        n = v.size
        bits = v.view(self.key_dtype)
        # non-negative floats (sign bit clear): the bit pattern already is the order key
        k = bits if n and bits.min() >= 0 else score_keys(v, out=self._kbuf[:n])
        b = self._bbuf[:n]
        np.subtract(np.right_shift(k, self.shift), self.j0, out=b, dtype=np.intp)
        c = np.take(self.lut, b, out=self._cbuf[:n], mode="clip")
        idx = np.flatnonzero(c < 0)
        if not idx.size:
            return c
        kk = k[idx]
        if self.table:
            row = (-1 - c[idx]).astype(np.intp)
            c[idx] = self.l2[(row << self.shift) + (kk & ((1 << self.shift) - 1))]
            return c
        a = ((-c[idx].astype(np.int64) - 1) >> 1)             # first positive of the bucket
        keys_ext = self.keys_ext
        active = np.arange(idx.size)
        while active.size:
            step = keys_ext[a[active]] <= kk[active]          # positives are sorted in a bucket
            active = active[step]
            a[active] += 1
        eq = (a > 0) & (keys_ext[a - 1] == kk)
        c[idx] = 2 * a - eq
        return c
