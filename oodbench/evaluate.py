"""Evaluate stored predictions of one method on one split (no model needed).

Order of work (each step is a pass over the frames, reading predictions from the store):

1. pixel metrics with the split's protocol (or the one asked for);
2. SMIYC component metrics (sIoU, PPV, mean F1) at the method's best pixel-F1 threshold of pass 1,
   for SMIYC splits under the ``smiyc`` protocol (the official order: PixBinaryClass, then SegEval),
   and, with ``bootstrap``, the per-frame semantic counts at pass 1's open-set thresholds;
3. closed-set and open-set mIoU when the split has semantic labels: every frame needs its semantic
   map (some missing is an error naming them); a store with none at all (e.g. another tool's
   anomaly-only predictions) gets these metrics listed under ``notes["metrics_not_computed"]``
   and a warning, never a silent omission.

Before any pass the stored frames must come from one configuration (the digest in each score
file, :meth:`PredictionStore.check_single_config`); mixed stores are refused naming frames. Frames
predicted from other image files than the split holds now (the input digest in each score file
against :func:`oodbench.datasets.input_digest` of the current files: bytes hashed, not decoded) are
refused as stale (:class:`~oodbench.store.StalePredictionsError`).

Frames are read with :meth:`Split.load_labels <oodbench.datasets.Split.load_labels>`: images are
never decoded. Pass 2 reuses the (checked) labels, scores and semantic maps pass 1 read while they
fit in ``pass2_cache_bytes`` (6 MB per 1024x2048 float16 frame with labels; ~4.6 MB per 720x1280
StreetHazards frame with its semantic prediction and GT) and re-reads only the rest.

``reduce`` merges accumulator states across processes between passes (identity in one process;
``oodbench.sharding`` passes an all-gather merge), so sharded evaluation gives exactly the
single-process numbers.

With ``bootstrap`` (a :class:`~oodbench.intervals.BootstrapSpec`) the passes also keep the per-frame
states of the frame bootstrap (a :class:`~oodbench.metrics.FrameCollector` for the pooled
``exact`` / ``fishyscapes`` protocols; the SMIYC and StreetHazards accumulators and the SegEval
components are per frame already), reduced like the accumulators; the output then carries ``ci``,
``bootstrap`` and the ``frame_states`` (for paired comparisons, :mod:`oodbench.compare`).  For
open-set and closed-set mIoU pass 2 also runs (only with ``bootstrap``): it counts each frame's
confusion at the open-set thresholds of pass 1 (:class:`~oodbench.metrics.OpenSetFrameCounts`,
frame state ``"semantic"``), as the components use pass 1's pixel threshold.
"""
from __future__ import annotations

import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Iterable, NamedTuple, Sequence

import numpy as np

from oodbench.errors import OodbenchError

from .contracts import ContractError, check_labels
from .intervals import BootstrapSpec, intervals
from .results import DataFingerprint
from .datasets import input_digest
from .store import PredictionError, PredictionStore, StalePredictionsError

__all__ = [
    "EvaluationOutput", "evaluate_split", "MissingPredictionsError", "LabelsHiddenError", "PASS2_CACHE_BYTES",
]

Reducer = Callable[[Any], Any]

#: default memory bound of what pass 1 keeps for pass 2 (labels + scores as read): ~85 frames of
#: 1024x2048 float16; the frames beyond it are re-read (labels, never images) in pass 2.
PASS2_CACHE_BYTES = 512 * 2**20


class MissingPredictionsError(PredictionError):
    """Some frames of the split have no stored prediction; nothing is reported as complete."""


class LabelsHiddenError(OodbenchError, ValueError):
    """The split's ground truth is not public (use a submission instead)."""


@dataclass
class EvaluationOutput:
    metrics: dict[str, float]
    protocol: str
    protocol_version: str
    num_frames: int
    data_fingerprint: str
    wall_time_s: float
    notes: dict[str, Any] = field(default_factory=dict)
    #: the FPR95 rule the pixel protocol used (``oodbench.metrics.FPR_RULES``)
    fpr_rule: str = ""
    #: frame-bootstrap intervals ``{metric: [lo, hi]}`` (empty without ``bootstrap``)
    ci: dict[str, list[float | None]] = field(default_factory=dict)
    #: ``{"n", "level", "seed", "unit": "frame", ...}`` of the intervals, ``None`` without them
    bootstrap: dict[str, Any] | None = None
    #: the resampled per-frame states by source (``"pixel"``, ``"components"``, ``"semantic"``), in
    #: frame order
    frame_states: dict[str, Any] = field(default_factory=dict, repr=False)


def _identity(x: Any) -> Any:
    return x


def _progress(it: Iterable, total: int, desc: str, enabled: bool) -> Iterable:
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, total=total, desc=desc, leave=False, unit="frame")


def _frame_pairs(split, store: PredictionStore, ids: Sequence[str], with_semantic: bool):
    """Yield ``(frame, scores, semantic_pred)`` in order, reading ahead in two threads."""

    def load(fid: str):
        frame = split.load_labels(fid)
        scores = store.read_anomaly(split.key, fid)
        sem = store.read_semantic(split.key, fid) if with_semantic else None
        return frame, scores, sem

    with ThreadPoolExecutor(max_workers=2) as pool:
        # map() keeps order; chunks bound the read-ahead (memory) to a few frames
        chunk = 8
        for start in range(0, len(ids), chunk):
            yield from pool.map(load, ids[start : start + chunk])


def _checked(frame, scores: np.ndarray, store: PredictionStore, key: str) -> tuple[np.ndarray, np.ndarray]:
    where = f"{store.anomaly_path(key, frame.frame_id)}"
    if frame.label is None:
        raise LabelsHiddenError(f"frame {frame.frame_id}: no ground truth")
    labels = check_labels(frame.label, where=f"labels of frame {frame.frame_id}")
    if scores.shape != labels.shape:
        raise PredictionError(
            f"{where}: prediction shape {scores.shape} != label shape {labels.shape} "
            "(store predictions at full label resolution)"
        )
    return scores, labels  # finite: store.read_anomaly refuses NaN/inf for every reader


class _Kept(NamedTuple):
    """What pass 1 keeps of a frame for pass 2 (``None``: not needed by pass 2)."""

    scores: np.ndarray
    labels: np.ndarray | None
    pred: np.ndarray | None
    semantic: np.ndarray | None
    group: str | None

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.scores, self.labels, self.pred, self.semantic) if a is not None)


def _semantic_inputs(split, store: PredictionStore, frame, sem: np.ndarray,
                     sem_map: np.ndarray | None) -> tuple[np.ndarray, str]:
    """The frame's semantic prediction (in the split's classes, shape checked) and its group."""
    if frame.semantic is None:
        raise ContractError(f"{split.name}/{frame.frame_id}: split declares semantic labels but has none")
    pred = sem_map[sem] if sem_map is not None else sem
    if pred.shape != frame.semantic.shape:
        raise PredictionError(
            f"{store.semantic_path(split.key, frame.frame_id)}: shape {pred.shape} != "
            f"label shape {frame.semantic.shape}"
        )
    return pred, split.calibration_group(frame)


def _known_gt(semantic: np.ndarray, num_classes: int) -> np.ndarray:
    """Closed-set GT over the known classes: anomaly pixels (id K) are ignored (§5.1)."""
    return np.where(semantic >= num_classes, 255, semantic).astype(np.uint8)


def evaluate_split(
    split,
    store: PredictionStore,
    protocol: str | None = None,
    *,
    frame_ids: Sequence[str] | None = None,
    reduce: Reducer = _identity,
    semantic_label_space: str | None = None,
    progress: bool = True,
    fpr_rule: str | None = None,
    pass2_cache_bytes: int = PASS2_CACHE_BYTES,
    bootstrap: BootstrapSpec | None = None,
) -> EvaluationOutput:
    """Evaluate the predictions in ``store`` for ``split``.

    Args:
        split: a :class:`oodbench.datasets.Split`.
        store: the method's :class:`~oodbench.store.PredictionStore`.
        protocol: metric protocol (default: the split's official one).
        frame_ids: evaluate only these frames (sharding); default: all frames of the split, and
            then every frame must have a prediction.
        reduce: merges an accumulator across processes (sharded evaluation).
        semantic_label_space: label space of stored semantic predictions
            (``"cityscapes19"`` maps through the split's ``semantic_mapping``).
        fpr_rule: FPR95 rule (``oodbench.metrics.FPR_RULES``); default: the protocol's own.
            Official protocols refuse any other rule (``ValueError``); ``exact`` accepts all three.
        pass2_cache_bytes: how much of pass 1's labels, scores and semantic maps may be kept for
            pass 2 (frames beyond it are read again); results do not depend on it.
        bootstrap: also compute frame-bootstrap intervals of the pixel, component and (open-set
            and closed-set) mIoU metrics.

    Raises:
        LabelsHiddenError: the split has no public labels.
        MissingPredictionsError: frames without predictions, or without semantic maps while
            others have them (listed in the message).
        MixedPredictionsError: the stored frames come from more than one configuration.
        PredictionError / ContractError: corrupt files, shape mismatch, NaN scores (file named).
    """
    from . import metrics as M

    t0 = time.perf_counter()
    if not split.labels_public:
        raise LabelsHiddenError(
            f"{split.name}: labels are hidden (test split); evaluate on the validation split or "
            f"build a submission with `oodbench submit`"
        )
    all_ids = split.frame_ids()
    ids = list(all_ids if frame_ids is None else frame_ids)
    missing = store.missing(split.key, all_ids)
    if missing:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise MissingPredictionsError(
            f"{len(missing)} of {len(all_ids)} frames of {split.name} have no prediction under "
            f"{store.anomaly_dir(split.key)}: {shown}"
        )
    config = store.check_single_config(split.key, all_ids)
    # on every rank over all frames (so all ranks refuse alike): the image bytes, never decoded
    stale = store.changed_inputs(split.key, all_ids, partial(input_digest, split))
    if stale:
        shown = ", ".join(stale[:10]) + (" ..." if len(stale) > 10 else "")
        raise StalePredictionsError(
            f"{len(stale)} of {len(all_ids)} frames under {store.anomaly_dir(split.key)} were predicted from other "
            f"image files than {split.name} holds under {split.root} now (the data changed since the run): "
            f"{shown}; rerun `oodbench run` to recompute them"
        )
    protocol = protocol or split.protocol
    pixel = M.build_protocol(protocol, **({} if fpr_rule is None else {"fpr_rule": fpr_rule}))
    # the pooled protocols keep no per-frame state: a collector sits next to them
    collector = (M.FrameCollector(fpr_rule=pixel.fpr_rule)
                 if bootstrap is not None and isinstance(pixel, (M.ExactPixelAccumulator,
                                                                 M.FishyscapesPixelAccumulator)) else None)
    notes: dict[str, Any] = {"predictions_config": config or "unrecorded"}
    want_semantic = split.num_classes is not None
    if want_semantic:
        sem_missing = store.missing_semantic(split.key, all_ids)
        if len(sem_missing) == len(all_ids):
            want_semantic = False
            reason = f"no semantic predictions under {store.semantic_dir(split.key)}"
            notes["metrics_not_computed"] = {"open_miou": reason, "closed_miou": reason}
            warnings.warn(f"{split.name}: {reason}; open_miou and closed_miou are not computed",
                          UserWarning, stacklevel=2)
        elif sem_missing:
            shown = ", ".join(sem_missing[:10]) + (" ..." if len(sem_missing) > 10 else "")
            raise MissingPredictionsError(
                f"{len(sem_missing)} of {len(all_ids)} frames of {split.name} have no semantic "
                f"prediction under {store.semantic_dir(split.key)}: {shown}"
            )
    components = None
    if split.component_metrics and protocol == "smiyc":
        components = split.component_metrics
    open_set = closed = None
    sem_map = None
    if want_semantic:
        open_set = M.OpenSetMIoU(num_known=split.num_classes)
        closed = M.ConfusionMatrix(num_classes=split.num_classes)
        if semantic_label_space == "cityscapes19" and split.semantic_mapping:
            sem_map = np.zeros(256, dtype=np.uint8)
            for src, dst in split.semantic_mapping.items():
                sem_map[int(src)] = int(dst)

    # pass 2 runs for the SMIYC components and, with the bootstrap, for the per-frame semantic
    # counts at the full-sample open-set thresholds
    sem_counts = bootstrap is not None and want_semantic
    # pass 1: pixel metrics (+ semantic accumulators, which need no threshold)
    fingerprint = DataFingerprint()
    kept: dict[str, _Kept] = {}    # for pass 2, bounded by pass2_cache_bytes
    kept_bytes = 0
    for frame, scores, sem in _progress(
        _frame_pairs(split, store, ids, want_semantic), len(ids), f"{split.name}: pixels", progress
    ):
        scores, labels = _checked(frame, scores, store, split.key)
        fingerprint.update(frame.frame_id, labels)
        pixel.update(scores, labels, frame_id=frame.frame_id)
        if collector is not None:
            collector.update(scores, labels, frame_id=frame.frame_id)
        if want_semantic:
            pred, group = _semantic_inputs(split, store, frame, sem, sem_map)
            open_set.update(scores, pred, frame.semantic, group=group, frame_id=frame.frame_id)
            closed.update(pred, _known_gt(frame.semantic, split.num_classes), frame_id=frame.frame_id)
        if components is not None or sem_counts:
            item = _Kept(scores, labels if components is not None else None,
                         *((pred, frame.semantic, group) if sem_counts else (None, None, None)))
            if kept_bytes + item.nbytes <= pass2_cache_bytes:
                kept[frame.frame_id] = item
                kept_bytes += item.nbytes
    pixel = reduce(pixel)
    fingerprint = reduce(fingerprint)
    metrics = dict(pixel.compute())
    frame_states: dict[str, Any] = {}
    if bootstrap is not None:
        frame_states["pixel"] = reduce(collector) if collector is not None else pixel
    semantic_metrics: dict[str, Any] = {}
    if want_semantic:
        open_set = reduce(open_set)
        closed = reduce(closed)
        thresholds = open_set.thresholds()
        semantic_metrics = {**open_set.metrics_at(thresholds), **closed.compute()}

    # pass 2: SMIYC component metrics at the best pixel-F1 threshold of pass 1, and the bootstrap's
    # per-frame semantic counts at the open-set thresholds of pass 1
    comp = counts = None
    if components is not None:
        thr = float(metrics["best_f1_threshold"])
        comp = M.SmiycComponentAccumulator(config=components, threshold=thr)
    if sem_counts:
        counts = M.OpenSetFrameCounts(num_known=split.num_classes, thresholds=thresholds)
    if comp is not None or counts is not None:
        desc = "components" if counts is None else "semantic counts" if comp is None else "components + counts"
        reread = iter(_frame_pairs(split, store, [f for f in ids if f not in kept], counts is not None))
        for fid in _progress(ids, len(ids), f"{split.name}: {desc}", progress):
            if fid in kept:
                item = kept.pop(fid)
            else:
                frame, scores, sem = next(reread)
                scores, labels = _checked(frame, scores, store, split.key)
                pred, group = _semantic_inputs(split, store, frame, sem, sem_map) if counts is not None else (None, None)
                item = _Kept(scores, labels, pred, frame.semantic, group)
            if comp is not None:
                comp.update(item.scores, item.labels, frame_id=fid)
            if counts is not None:
                counts.update(item.scores, item.pred, item.semantic, group=item.group, frame_id=fid)
    if comp is not None:
        comp = reduce(comp)
        metrics.update(comp.compute())
        if bootstrap is not None:
            frame_states["components"] = comp
        notes["component_metrics"] = f"SegEval-{components} @ threshold {thr!r}"

    if want_semantic:
        metrics.update(semantic_metrics)
        if counts is not None:
            frame_states["semantic"] = reduce(counts)
        if sem_map is not None:
            notes["semantic_mapping"] = "cityscapes19 -> split classes (cityscapes_to_semantic)"

    ci, note = intervals(frame_states, bootstrap) if bootstrap is not None else ({}, None)
    return EvaluationOutput(
        metrics={k: (float(v) if isinstance(v, (int, float, np.floating, np.integer)) else v) for k, v in metrics.items()},
        protocol=protocol,
        protocol_version=str(getattr(pixel, "version", M.PROTOCOLS.get(protocol, ""))),
        num_frames=len(all_ids),
        data_fingerprint=fingerprint.hexdigest(),
        wall_time_s=time.perf_counter() - t0,
        notes=notes,
        fpr_rule=str(getattr(pixel, "fpr_rule", "")),
        ci=ci,
        bootstrap=note,
        frame_states=frame_states,
    )
