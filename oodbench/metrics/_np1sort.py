"""Which element numpy 1.23's ``np.argsort`` (default quicksort) puts at a given sorted position.

SMIYC's ``aggregate_dynamic_bins`` orders the pooled bin thresholds with ``np.argsort(...)[::-1]``
(not a stable sort) and its curve keeps the *first* element of that order as a point of its own
(``curves_from_cmats`` keeps index 0).  When several frames share the largest threshold, which of
their bins becomes that point depends on the tie order of numpy's introsort -- and the official
numbers were produced with numpy 1.23 (``numpy/core/src/npysort/quicksort.cpp``, ``aquicksort_``;
``heapsort.cpp``, ``aheapsort_``), whose order differs from numpy >= 1.25's SIMD argsort.

:func:`np1_argsort_at` re-enacts that algorithm (median-of-3 Hoare partition with sentinels,
insertion sort for ranges of <= 16 elements, ``SMALL_QUICKSORT = 15``, heapsort when the depth
limit ``2 * floor(log2 n)`` is exhausted on a popped range) but follows only the partition that
contains the requested position, so it costs O(n) vectorised work instead of a full sort.  Each
partition step is computed in closed form: the k-th left stop (first not-less-than-pivot element)
is swapped with the k-th right stop while they have not crossed.
"""
from __future__ import annotations

import numpy as np

__all__ = ["np1_argsort_at"]

_SMALL_QUICKSORT = 15


def np1_argsort_at(values: np.ndarray, position: int) -> int:
    """``np.argsort(values)[position]`` as numpy 1.23 computes it (1-D float array)."""
    v = np.asarray(values)
    n = v.size
    if not 0 <= position < n:
        raise IndexError(f"position {position} out of range for {n} values")
    tosort = np.arange(n, dtype=np.intp)
    pl, pr = 0, n - 1
    cdepth = 2 * (int(n).bit_length() - 1)
    checked = True                       # the depth check runs at start and after a stack pop
    while True:
        if checked and cdepth < 0:
            _aheapsort(v, tosort, pl, pr)
            return int(tosort[position])
        checked = False
        while pr - pl > _SMALL_QUICKSORT:
            pi = _partition(v, tosort, pl, pr)
            cdepth -= 1
            if position == pi:
                return int(tosort[pi])
            left_smaller = (pi - pl) < (pr - pi)
            in_left = position < pi
            if in_left == left_smaller:           # continue with the smaller part, no check
                pl, pr = (pl, pi - 1) if in_left else (pi + 1, pr)
            else:                                 # the larger part is pushed, checked on pop
                pl, pr = (pl, pi - 1) if in_left else (pi + 1, pr)
                checked = True
                break
        else:
            _insertion(v, tosort, pl, pr)
            return int(tosort[position])


def _partition(v: np.ndarray, t: np.ndarray, pl: int, pr: int) -> int:
    pm = pl + ((pr - pl) >> 1)
    if v[t[pm]] < v[t[pl]]:
        t[pm], t[pl] = t[pl], t[pm]
    if v[t[pr]] < v[t[pm]]:
        t[pr], t[pm] = t[pm], t[pr]
    if v[t[pm]] < v[t[pl]]:
        t[pm], t[pl] = t[pl], t[pm]
    vp = v[t[pm]]
    t[pm], t[pr - 1] = t[pr - 1], t[pm]
    vals = v[t[pl:pr + 1]]
    # left stops: positions pl+1..pr-1 whose value is not < pivot (pr-1 holds the pivot)
    lstop = pl + 1 + np.flatnonzero(~(vals[1:pr - pl] < vp))
    # right stops: positions pr-2..pl (descending) whose value is not > pivot (pl is <= pivot)
    rstop = (pl + np.flatnonzero(~(vp < vals[:pr - pl - 1])))[::-1]
    k = min(lstop.size, rstop.size)
    crossed = np.flatnonzero(lstop[:k] >= rstop[:k])
    kk = int(crossed[0])                  # always exists: the sentinels cross
    if kk:
        a, b = lstop[:kk], rstop[:kk]
        t[a], t[b] = t[b].copy(), t[a].copy()
        pi = int(min(lstop[kk], rstop[kk - 1]))
    else:
        pi = int(lstop[0])
    t[pi], t[pr - 1] = t[pr - 1], t[pi]
    return pi


def _insertion(v: np.ndarray, t: np.ndarray, pl: int, pr: int) -> None:
    for i in range(pl + 1, pr + 1):
        vi = t[i]
        x = v[vi]
        j = i
        while j > pl and x < v[t[j - 1]]:
            t[j] = t[j - 1]
            j -= 1
        t[j] = vi


def _sift_down(v: np.ndarray, t: np.ndarray, a: int, i: int, n: int) -> None:
    """Move ``t[a + i]`` down the max-heap ``t[a + 1 .. a + n]`` (keyed by ``v``), as ``aheapsort_``."""
    tmp = t[a + i]
    j = i << 1
    while j <= n:
        if j < n and v[t[a + j]] < v[t[a + j + 1]]:
            j += 1
        if v[tmp] < v[t[a + j]]:
            t[a + i] = t[a + j]
            i, j = j, j + j
        else:
            break
    t[a + i] = tmp


def _aheapsort(v: np.ndarray, t: np.ndarray, pl: int, pr: int) -> None:
    n = pr - pl + 1
    a = pl - 1                            # 1-based heap indexing: element i lives at t[a + i]
    for l in range(n >> 1, 0, -1):
        _sift_down(v, t, a, l, n)
    while n > 1:
        t[a + 1], t[a + n] = t[a + n], t[a + 1]
        n -= 1
        _sift_down(v, t, a, 1, n)
