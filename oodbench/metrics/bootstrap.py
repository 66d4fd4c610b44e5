"""Frame bootstrap confidence intervals and paired comparisons for every frame-pooled metric.

The sampling unit is the **frame**: pixels of one frame are correlated, frames are (close to)
independent, so resampling pixels would give far too narrow intervals.  A replicate draws ``F``
frames with replacement (one multinomial draw of frame multiplicities from
``numpy.random.default_rng(seed)``) and recomputes the metric from the per-frame states of the
drawn frames -- never from pixels::

    from oodbench.metrics import FrameCollector, bootstrap_ci, paired_bootstrap
    col = FrameCollector()                       # in the evaluation pass, next to the accumulator
    for frame_id, scores, labels in frames:
        col.update(scores, labels, frame_id)
    res = bootstrap_ci(col, n=1000, level=0.95, seed=0)
    res.ci["auprc"], res.as_json()               # {"ci": {...}, "bootstrap": {"n", "level", "seed", "unit"}}
    paired_bootstrap(col_a, col_b, n=1000).metrics["auprc"]   # {"delta", "ci", "p_value"}

Sources (:mod:`._resample`): :class:`~._binned.FrameCollector` for the pooled ``exact`` /
``fishyscapes`` protocols (binned; see :mod:`._binned` for what is exact), and the accumulators
whose state is already per frame: :class:`~.smiyc.SmiycPixelAccumulator`,
:class:`~.components.SmiycComponentAccumulator` (threshold fixed from the full sample),
:class:`~.per_image.HendrycksPerImageAccumulator` (the interval of the mean over images) and
:class:`~.segmentation.OpenSetFrameCounts` (open-set and closed-set mIoU at the full-sample
open-set thresholds).

Determinism and joint resampling: the multiplicities depend only on ``(seed, n, F)``, so the same
seed gives identical intervals, and sources with the same frames in the same order (e.g. the pixel
collector and the component accumulator of one evaluation) are resampled with the *same* frames.

Intervals: ``percentile`` (the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the
replicates) or ``bca`` (bias-corrected and accelerated, Efron 1987; the acceleration from the
``F`` leave-one-frame-out jackknife values, i.e. ``F`` extra weighted evaluations).  Replicates in
which a metric is undefined (e.g. no anomaly pixel drawn) are left out and counted in
``undefined``.  ``point`` is the full-sample value as the replicates compute it (for the
``FrameCollector`` the binned value; the evaluator reports its exact value next to the interval).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
from scipy.special import ndtr, ndtri

from ..errors import UsageError
from ._binned import BinnedFrames, FrameCollector, binned_curve_metrics
from ._resample import resampler

__all__ = ["bootstrap_ci", "paired_bootstrap", "BootstrapResult", "PairedBootstrapResult",
           "frame_weights", "FrameCollector", "BinnedFrames", "binned_curve_metrics", "METHODS"]

METHODS = ("percentile", "bca")


@dataclass
class BootstrapResult:
    """Intervals ``ci`` and full-sample values ``point`` per metric, the ``replicates`` and ``spec``."""

    ci: dict[str, tuple[float, float]]
    point: dict[str, float]
    replicates: dict[str, np.ndarray] = field(repr=False)
    spec: dict[str, Any]
    undefined: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """``{"ci": {metric: [lo, hi]}, "bootstrap": {"n", "level", "seed", "unit", "method"}}``."""
        return {"ci": {k: [_num(lo), _num(hi)] for k, (lo, hi) in self.ci.items()},
                "bootstrap": dict(self.spec)}


@dataclass
class PairedBootstrapResult:
    """Per metric ``{"delta": a - b, "ci": (lo, hi), "p_value": p}`` plus ``spec``."""

    metrics: dict[str, dict[str, Any]]
    spec: dict[str, Any]
    replicates: dict[str, np.ndarray] = field(repr=False, default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"paired": {k: {"delta": _num(v["delta"]), "ci": [_num(x) for x in v["ci"]],
                               "p_value": _num(v["p_value"])} for k, v in self.metrics.items()},
                "bootstrap": dict(self.spec)}


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _check(n: int, level: float, method: str) -> None:
    if int(n) < 1 or int(n) != n:
        raise UsageError(f"bootstrap: n must be a positive integer, got {n!r}")
    if not 0.0 < float(level) < 1.0:
        raise UsageError(f"bootstrap: level must lie strictly between 0 and 1, got {level!r}")
    if method not in METHODS:
        raise UsageError(f"bootstrap: method must be one of {METHODS}, got {method!r}")


def frame_weights(n: int, num_frames: int, seed: int) -> np.ndarray:
    """``n x num_frames`` frame multiplicities (each row sums to ``num_frames``), one multinomial
    draw per replicate from ``numpy.random.default_rng(seed)``."""
    if num_frames < 1:
        raise UsageError("bootstrap: no frames to resample")
    rng = np.random.default_rng(seed)
    return rng.multinomial(num_frames, np.full(num_frames, 1.0 / num_frames), size=int(n))


def _evaluate(res: Any, weights: np.ndarray) -> dict[str, np.ndarray]:
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, weights.shape[0], res.chunk):
        for k, v in res.metrics(weights[start:start + res.chunk].astype(np.float64)).items():
            parts.setdefault(k, []).append(np.asarray(v, np.float64))
    return {k: np.concatenate(v) for k, v in parts.items()}


def _jackknife_weights(f: int) -> np.ndarray:
    return np.ones((f, f)) - np.eye(f)


def _interval(reps: np.ndarray, point: float, level: float, method: str,
              jack: np.ndarray | None) -> tuple[float, float]:
    r = reps[np.isfinite(reps)]
    if r.size == 0 or not np.isfinite(point):
        return float("nan"), float("nan")
    lo_q, hi_q = (1.0 - level) / 2.0, (1.0 + level) / 2.0
    if method == "bca":
        lo_q, hi_q = _bca_quantiles(r, point, jack, lo_q, hi_q)
    lo, hi = np.quantile(r, [lo_q, hi_q])
    return float(lo), float(hi)


def _bca_quantiles(r: np.ndarray, point: float, jack: np.ndarray | None, lo_q: float,
                   hi_q: float) -> tuple[float, float]:
    """Efron's BCa: bias correction from the share of replicates below the point, acceleration
    from the jackknife skewness (0 when undefined)."""
    if np.all(r == r[0]):
        return lo_q, hi_q
    share = (np.count_nonzero(r < point) + 0.5 * np.count_nonzero(r == point)) / r.size
    share = min(max(share, 0.5 / r.size), 1.0 - 0.5 / r.size)
    z0 = float(ndtri(share))
    a = 0.0
    if jack is not None:
        j = jack[np.isfinite(jack)]
        if j.size > 2:
            d = j.mean() - j
            denom = 6.0 * float(np.sum(d ** 2)) ** 1.5
            a = float(np.sum(d ** 3)) / denom if denom > 0 else 0.0
    out = []
    for q in (lo_q, hi_q):
        z = z0 + float(ndtri(q))
        out.append(float(ndtr(z0 + z / (1.0 - a * z))))
    return out[0], out[1]


def _spec(n: int, level: float, seed: int, method: str) -> dict[str, Any]:
    return {"n": int(n), "level": float(level), "seed": int(seed), "unit": "frame", "method": method}


def bootstrap_ci(source: Any, n: int = 1000, level: float = 0.95, seed: int = 0,
                 method: str = "percentile") -> BootstrapResult:
    """Frame-bootstrap interval of every metric of ``source``.

    Args:
        source: a :class:`FrameCollector`, :class:`~.smiyc.SmiycPixelAccumulator`,
            :class:`~.components.SmiycComponentAccumulator`,
            :class:`~.per_image.HendrycksPerImageAccumulator` or
            :class:`~.segmentation.OpenSetFrameCounts` (or a resampler built from one, e.g.
            ``collector.binned()`` to reuse the binning).
        n: number of replicates.
        level: interval coverage (e.g. 0.95).
        seed: seed of the frame draws (same seed -> same intervals).
        method: ``"percentile"`` or ``"bca"``.
    """
    _check(n, level, method)
    res = resampler(source)
    f = len(res.frame_ids)
    point = {k: float(v[0]) for k, v in _evaluate(res, np.ones((1, f))).items()}
    reps = _evaluate(res, frame_weights(n, f, seed))
    jack = _evaluate(res, _jackknife_weights(f)) if method == "bca" else {}
    ci = {k: _interval(reps[k], point[k], level, method, jack.get(k)) for k in reps}
    undefined = {k: int(np.count_nonzero(~np.isfinite(v))) for k, v in reps.items()}
    return BootstrapResult(ci, point, reps, _spec(n, level, seed, method), undefined)


def _align(a: Any, b: Any) -> Any:
    """``b`` with its frames in ``a``'s order; refuses different frame sets."""
    ia, ib = list(a.frame_ids), list(b.frame_ids)
    if ia == ib:
        return b
    if len(set(ia)) != len(ia) or len(set(ib)) != len(ib) or set(ia) != set(ib):
        only_a = [x for x in ia if x not in set(ib)][:3]
        only_b = [x for x in ib if x not in set(ia)][:3]
        raise ValueError(
            f"paired bootstrap needs the same frames for both methods: {len(ia)} vs {len(ib)} frames"
            + (f", only in a: {only_a}" if only_a else "") + (f", only in b: {only_b}" if only_b else "")
            + ("" if only_a or only_b else " (duplicate frame ids)"))
    pos = {fid: i for i, fid in enumerate(ib)}
    return b.reordered(np.array([pos[x] for x in ia]))


def paired_bootstrap(a: Any, b: Any, n: int = 1000, level: float = 0.95, seed: int = 0,
                     method: str = "percentile") -> PairedBootstrapResult:
    r"""Difference ``a - b`` of every metric, resampling the **same** frames for both methods.

    ``a`` and ``b`` are sources of the same kind over the same frames (checked by frame id; ``b``
    is reordered to ``a``'s frame order).  Per metric: ``delta`` (full sample), ``ci`` (interval of
    the replicate differences) and ``p_value``, the two-sided bootstrap p-value of "no difference"
    obtained by inverting the percentile interval (Efron & Tibshirani 1993, ch. 15-16):

    .. math:: p = \min\Big(1,\; 2\min\Big(\frac{1 + \#\{d^* \le 0\}}{n + 1},
              \frac{1 + \#\{d^* \ge 0\}}{n + 1}\Big)\Big)

    so ``p < 1 - level`` exactly when 0 lies outside the percentile interval of the same replicates
    (the table never shows an interval excluding 0 next to a large p, or the reverse); exactly 1
    when every replicate difference is 0 (a method compared with itself), and ``2 / (n + 1)`` when
    every replicate favours one method.
    """
    _check(n, level, method)
    if type(a) is not type(b):
        raise TypeError(f"paired bootstrap compares like with like, got {type(a).__name__} and "
                        f"{type(b).__name__}")
    ra, rb = resampler(a), resampler(b)
    rb = _align(ra, rb)
    f = len(ra.frame_ids)
    ones = np.ones((1, f))
    pa, pb = _evaluate(ra, ones), _evaluate(rb, ones)
    w = frame_weights(n, f, seed)
    wa, wb = _evaluate(ra, w), _evaluate(rb, w)
    jack: Mapping[str, np.ndarray] = {}
    if method == "bca":
        jw = _jackknife_weights(f)
        ja, jb = _evaluate(ra, jw), _evaluate(rb, jw)
        jack = {k: ja[k] - jb[k] for k in ja}
    out: dict[str, dict[str, Any]] = {}
    reps: dict[str, np.ndarray] = {}
    for k in wa:
        delta = float(pa[k][0] - pb[k][0])
        d = wa[k] - wb[k]
        reps[k] = d
        fin = d[np.isfinite(d)]
        if fin.size and np.isfinite(delta):
            below = (1.0 + np.count_nonzero(fin <= 0)) / (fin.size + 1.0)
            above = (1.0 + np.count_nonzero(fin >= 0)) / (fin.size + 1.0)
            p = 2.0 * min(below, above)
        else:
            p = float("nan")
        out[k] = {"delta": delta, "ci": _interval(d, delta, level, method, jack.get(k)),
                  "p_value": float(min(p, 1.0))}
    return PairedBootstrapResult(out, _spec(n, level, seed, method), reps)
