"""Frame-bootstrap settings of an evaluation and the intervals of its metrics (issue #15).

The evaluator (:func:`oodbench.evaluate.evaluate_split`) keeps, next to each accumulator, the
per-frame state the frame bootstrap resamples (:mod:`oodbench.metrics.bootstrap`); this module
turns those *frame states* into the ``ci`` / ``bootstrap`` objects of a result record and holds
the command-line flags ``--bootstrap N --ci LEVEL --seed S`` shared by ``run``, ``evaluate`` and
``compare``.  Pure numpy/scipy: commands that need no model import it without torch.

Sources per protocol (what "the interval" means):

* ``exact`` / ``fishyscapes``: a :class:`~oodbench.metrics.FrameCollector` (pooled curve from
  per-frame score histograms, binned; exact for float16 scores);
* ``smiyc``: the pixel accumulator's per-frame bin tables (the official pooled curve) and the
  SegEval component accumulator at the full-sample threshold (the same frames in each replicate);
* ``streethazards``: the interval of the mean over images;
* open-set and closed-set mIoU (splits with semantic labels): the per-frame confusion counts at the
  full-sample open-set thresholds (:class:`~oodbench.metrics.OpenSetFrameCounts`; the calibration
  is not redone per replicate, as the SegEval components keep the full-sample pixel threshold).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Mapping
from .errors import UsageError

__all__ = ["BootstrapSpec", "add_bootstrap_arguments", "spec_from_args", "intervals", "paired_intervals"]


@dataclass(frozen=True)
class BootstrapSpec:
    """How to bootstrap: ``n`` replicates, interval ``level``, ``seed`` of the frame draws, and the
    interval ``method`` (``percentile`` or ``bca``, :data:`oodbench.metrics.bootstrap.METHODS`)."""

    n: int = 1000
    level: float = 0.95
    seed: int = 0
    method: str = "percentile"

    def __post_init__(self) -> None:
        from .metrics.bootstrap import _check

        _check(self.n, self.level, self.method)  # ValueError naming the bad value


def add_bootstrap_arguments(p: argparse.ArgumentParser) -> None:
    """``--bootstrap N``, ``--ci LEVEL``, ``--seed S`` (one definition for every command)."""
    p.add_argument("--bootstrap", type=int, default=None, metavar="N",
                   help="frame-bootstrap confidence intervals with N replicates (e.g. 1000); stored as "
                        "'ci' and 'bootstrap' in the JSON and the result records")
    p.add_argument("--ci", type=float, default=0.95, metavar="LEVEL",
                   help="interval coverage for --bootstrap (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap frame draws (default 0)")


def spec_from_args(args: argparse.Namespace) -> BootstrapSpec | None:
    """The :class:`BootstrapSpec` the flags ask for, ``None`` without ``--bootstrap``.

    Raises:
        ValueError: a bad value, naming the flag (the CLI prints it, exit status 2).
    """
    if getattr(args, "bootstrap", None) is None:
        return None
    if args.bootstrap < 1:
        raise UsageError(f"--bootstrap must be a positive number of replicates, got {args.bootstrap}")
    if not 0.0 < args.ci < 1.0:
        raise UsageError(f"--ci must lie strictly between 0 and 1 (e.g. 0.95), got {args.ci}")
    return BootstrapSpec(n=args.bootstrap, level=args.ci, seed=args.seed)


def _spec_json(spec: BootstrapSpec, sources: Mapping[str, Any]) -> dict[str, Any]:
    from .metrics import FrameCollector

    out: dict[str, Any] = {"n": spec.n, "level": spec.level, "seed": spec.seed, "unit": "frame",
                           "method": spec.method}
    if any(isinstance(s, FrameCollector) for s in sources.values()):
        out["binned"] = ("pooled pixel metrics are resampled from per-frame score histograms "
                         "(exact for float16 scores); the point values are the exact ones")
    return out


def intervals(frame_states: Mapping[str, Any],
              spec: BootstrapSpec) -> tuple[dict[str, list[float | None]], dict[str, Any]]:
    """``(ci, bootstrap)`` of a record from the evaluator's frame states.

    Every source is resampled with the same seed, so sources over the same frames (pixel,
    component and semantic metrics of one evaluation) draw the same frames in each replicate.
    """
    from .metrics import bootstrap_ci

    ci: dict[str, list[float | None]] = {}
    undefined: dict[str, int] = {}
    for source in frame_states.values():
        res = bootstrap_ci(source, n=spec.n, level=spec.level, seed=spec.seed, method=spec.method)
        ci.update(res.as_json()["ci"])
        undefined.update({k: v for k, v in res.undefined.items() if v})
    note = _spec_json(spec, frame_states)
    if undefined:
        note["undefined_replicates"] = undefined
    return ci, note


def paired_intervals(a: Mapping[str, Any], b: Mapping[str, Any], spec: BootstrapSpec) -> dict[str, Any]:
    """``{metric: {"delta", "ci", "p_value"}}`` of ``a - b`` over the frame states of two evaluations
    of the same frames (same source names); the same frames are drawn for both methods."""
    from .metrics import paired_bootstrap

    out: dict[str, Any] = {}
    for name in a:
        if name not in b:
            raise ValueError(f"paired comparison: the second evaluation has no {name!r} frame state")
        res = paired_bootstrap(a[name], b[name], n=spec.n, level=spec.level, seed=spec.seed,
                               method=spec.method)
        out.update(res.as_json()["paired"])
    return out
