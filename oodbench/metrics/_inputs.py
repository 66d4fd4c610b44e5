"""Input conversion and validation shared by all accumulators.

Contract (:mod:`oodbench.contracts`): scores are real floating point, finite, higher = more
anomalous, and are never transformed; anomaly labels are ``0`` inlier, ``1`` anomaly, ``255``
ignore.  Any other label value, a NaN/inf score or a shape mismatch raises
:class:`~oodbench.metrics._base.MetricInputError` naming the frame.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ._base import MetricInputError

__all__ = ["to_numpy", "check_scores", "check_binary_labels", "check_label_values", "check_pair",
           "label_counts", "score_keys"]


def to_numpy(x: Any) -> np.ndarray:
    """numpy view of ``x``; torch tensors are detached and moved to the CPU (no dtype change)."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor without importing torch
        return x.detach().cpu().numpy()
    return np.asarray(x)


def check_scores(scores: Any, where: str) -> np.ndarray:
    """Floating-point, finite scores (returned unchanged, never cast)."""
    arr = to_numpy(scores)
    if arr.dtype.kind != "f":
        raise MetricInputError(
            f"{where}: scores must be a floating-point array, got dtype {arr.dtype} "
            "(cast explicitly if integer scores are intended)"
        )
    if arr.size:
        if arr.dtype == np.float16:
            # all-ones exponent = inf/NaN; an integer max is ~100x faster than float16 min/max
            finite = int(np.bitwise_and(arr.view(np.uint16), np.uint16(0x7FFF)).max()) < 0x7C00
        else:
            # min/max propagate NaN and expose +-inf in two vectorised passes without temporaries
            lo, hi = arr.min(), arr.max()
            finite = bool(np.isfinite(lo) and np.isfinite(hi))
        if not finite:
            n_nan = int(np.isnan(arr).sum())
            n_inf = int(np.isinf(arr).sum())
            raise MetricInputError(f"{where}: scores contain {n_nan} NaN and {n_inf} infinite values")
    return arr


def check_binary_labels(labels: Any, where: str) -> np.ndarray:
    """Anomaly labels as ``uint8`` in {0, 1, 255} (bool is accepted as 0/1)."""
    arr = to_numpy(labels)
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.view(np.uint8)
    if arr.dtype.kind not in "ui":
        raise MetricInputError(f"{where}: labels must be an integer array, got dtype {arr.dtype}")
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise MetricInputError(
                f"{where}: unexpected label values (range {lo}..{hi}); allowed are 0 (inlier), "
                "1 (anomaly), 255 (ignore)"
            )
    return arr.astype(np.uint8)


def label_counts(labels: np.ndarray, where: str) -> np.ndarray:
    """``bincount`` of uint8 labels (length 256); raises on values other than 0, 1, 255."""
    counts = np.bincount(labels.reshape(-1), minlength=256)
    bad = np.flatnonzero(counts[2:255]) + 2
    if bad.size:
        raise MetricInputError(
            f"{where}: unexpected label values {bad[:10].tolist()} "
            f"({int(counts[2:255].sum())} pixels); allowed are 0 (inlier), 1 (anomaly), 255 (ignore)"
        )
    return counts


def check_label_values(labels: np.ndarray, where: str) -> None:
    """Raise like :func:`label_counts` on values other than 0, 1, 255, without counting them.

    ``(label + 1) mod 256 <= 2`` exactly for 255, 0, 1: one uint8 pass instead of a bincount.
    """
    if not (np.add(labels, 1, dtype=np.uint8) <= 2).all():
        label_counts(labels, where)


def check_pair(scores: Any, labels: Any, where: str, check_finite: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(scores, uint8 labels)`` of equal shape.

    ``check_finite=False`` leaves the NaN/inf test to the caller (the accumulators do it inside
    their single chunked pass over the pixels).
    """
    s = to_numpy(scores)
    lab = to_numpy(labels)
    if s.shape != lab.shape:
        raise MetricInputError(
            f"{where}: scores shape {tuple(s.shape)} differs from labels shape {tuple(lab.shape)}"
        )
    if check_finite:
        s = check_scores(s, where)
    elif s.dtype.kind != "f":
        raise MetricInputError(f"{where}: scores must be floating point, got dtype {s.dtype}")
    return s, check_binary_labels(lab, where)


def score_keys(values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Signed integer keys whose order is the float order (``-0.0`` and ``+0.0`` share key 0).

    float32 -> int32, float64 -> int64: key = sign ? -magnitude_bits : magnitude_bits.
    """
    if values.dtype == np.float32:
        bits, itype, mask = values.view(np.int32), np.int32, np.int32(0x7FFFFFFF)
        shift = 31
    elif values.dtype == np.float64:
        bits, itype, mask = values.view(np.int64), np.int64, np.int64(0x7FFFFFFFFFFFFFFF)
        shift = 63
    else:  # pragma: no cover - callers convert first
        raise TypeError(f"score_keys: unsupported dtype {values.dtype}")
    if out is None:
        out = np.empty(values.shape, itype)
    sgn = np.right_shift(bits, shift)          # 0 or -1
    np.bitwise_and(bits, mask, out=out)         # magnitude
    np.bitwise_xor(out, sgn, out=out)           # ~magnitude where negative
    np.subtract(out, sgn, out=out)              # -magnitude where negative
    return out
