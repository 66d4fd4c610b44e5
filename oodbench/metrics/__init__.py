"""Pixel metrics and official evaluation protocols (pure numpy/scipy; torch tensors accepted).

Functional one-shot API::

    from oodbench.metrics import pixel_metrics
    r = pixel_metrics(scores, labels)                       # exact pooled, first TPR >= 0.95
    r = pixel_metrics(score_maps, label_maps, protocol="smiyc")   # + best_f1, best_f1_threshold

Stateful accumulators (``update`` per frame, ``merge``, ``compute``, ``reset``, ``state_dict`` /
``load_state_dict`` / ``from_state`` / ``merge_states``), built from the same private steps:

================  ==========================================  =====================================
protocol          accumulator                                 reference
================  ==========================================  =====================================
``exact``         :class:`ExactPixelAccumulator`              oodbench pooled exact (any FPR rule)
``smiyc``         :class:`SmiycPixelAccumulator`              road-anomaly-benchmark PixBinaryClass
``fishyscapes``   :class:`FishyscapesPixelAccumulator`        bdlb ``calculate_metrics_perpixAP``
``streethazards`` :class:`HendrycksPerImageAccumulator`       anomaly-seg per-image mean
================  ==========================================  =====================================

plus :class:`SmiycComponentAccumulator` (SegEval sIoU / PPV / mean F1), :class:`ConfusionMatrix`
(closed-set mIoU), :class:`OpenSetMIoU` (DenseHybrid open-set mIoU) and
:class:`OpenSetFrameCounts` (their per-frame counts at fixed thresholds, for the bootstrap).  Frame-bootstrap confidence
intervals and paired comparisons: :func:`bootstrap_ci`, :func:`paired_bootstrap` with
:class:`FrameCollector` (per-frame histograms for the pooled protocols; :mod:`.bootstrap`).  Every result records
``protocol`` and ``protocol_version``.  Labels: 0 inlier, 1 anomaly, 255 ignored; any other value,
NaN/inf scores or a shape mismatch raise :class:`MetricInputError` naming the frame; a dataset
without anomaly or without inlier pixels raises too (never a plausible-looking number).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from oodbench.errors import UsageError

from ._base import Accumulator, MetricInputError, StateError
from ._binned import FrameCollector
from ._curves import FPR_RULES
from .components import COMPONENT_CONFIGS, SmiycComponentAccumulator
from .per_image import HendrycksPerImageAccumulator
from .pixel import ExactPixelAccumulator, FishyscapesPixelAccumulator
from .segmentation import ConfusionMatrix, OpenSetFrameCounts, OpenSetMIoU, half_resolution
from .bootstrap import BootstrapResult, PairedBootstrapResult, bootstrap_ci, paired_bootstrap
from .smiyc import SmiycPixelAccumulator

__all__ = [
    "PROTOCOLS",
    "FPR_RULES",
    "COMPONENT_CONFIGS",
    "build_protocol",
    "pixel_metrics",
    "Accumulator",
    "MetricInputError",
    "StateError",
    "ExactPixelAccumulator",
    "FishyscapesPixelAccumulator",
    "SmiycPixelAccumulator",
    "HendrycksPerImageAccumulator",
    "SmiycComponentAccumulator",
    "ConfusionMatrix",
    "OpenSetMIoU",
    "OpenSetFrameCounts",
    "half_resolution",
    "FrameCollector",
    "bootstrap_ci",
    "paired_bootstrap",
    "BootstrapResult",
    "PairedBootstrapResult",
]

_PIXEL_PROTOCOLS: dict[str, type[Accumulator]] = {
    cls.name: cls for cls in (ExactPixelAccumulator, SmiycPixelAccumulator,
                              FishyscapesPixelAccumulator, HendrycksPerImageAccumulator)
}
#: protocol name -> version string recorded with every result.
PROTOCOLS: dict[str, str] = {name: cls.version for name, cls in _PIXEL_PROTOCOLS.items()}


def build_protocol(name: str, **kwargs: Any) -> Accumulator:
    """A fresh pixel accumulator for protocol ``name`` (``kwargs`` go to its constructor)."""
    try:
        cls = _PIXEL_PROTOCOLS[name]
    except KeyError:
        raise UsageError(f"unknown protocol {name!r}; available: {sorted(PROTOCOLS)}") from None
    return cls(**kwargs)


def _is_single(x: Any) -> bool:
    return isinstance(x, np.ndarray) or hasattr(x, "shape") and hasattr(x, "dtype")


def pixel_metrics(scores: Any, labels: Any, protocol: str = "exact",
                  fpr_rule: str | None = None) -> dict[str, Any]:
    """One-shot pixel metrics.

    Args:
        scores: one score array, or a sequence of per-frame score arrays (any sizes).
        labels: matching label array(s): 0 inlier, 1 anomaly, 255 ignored.
        protocol: one of :data:`PROTOCOLS`.
        fpr_rule: FPR95 rule (:data:`FPR_RULES`); ``None`` = the protocol's own rule
            (``first_tpr_ge`` for ``exact``).  Official protocols only accept their own rule.

    Returns:
        dict with float ``auprc``, ``auroc``, ``fpr95`` (fractions), ``best_f1`` and
        ``best_f1_threshold`` for ``smiyc``, counts, and ``protocol`` / ``protocol_version``.
    """
    kwargs = {} if fpr_rule is None else {"fpr_rule": fpr_rule}
    if protocol == "smiyc" and fpr_rule not in (None, "first_tpr_ge"):
        raise UsageError("protocol 'smiyc' defines FPR95 as 'first_tpr_ge'")
    acc = build_protocol(protocol, **({} if protocol == "smiyc" else kwargs))
    if _is_single(scores) and _is_single(labels):
        pairs: Sequence = [(scores, labels)]
    else:
        scores, labels = list(scores), list(labels)
        if len(scores) != len(labels):
            raise MetricInputError(f"{len(scores)} score maps but {len(labels)} label maps")
        pairs = list(zip(scores, labels))
    for i, (s, lab) in enumerate(pairs):
        acc.update(s, lab, frame_id=i)
    return acc.compute()
