"""Evaluate stored predictions of one method on one split (no model needed).

Order of work (each step is a pass over the frames, reading predictions from the store):

1. pixel metrics with the split's protocol (or the one asked for);
2. SMIYC component metrics (sIoU, PPV, mean F1) at the method's best pixel-F1 threshold of pass 1,
   for SMIYC splits under the ``smiyc`` protocol (the official order: PixBinaryClass, then SegEval);
3. closed-set and open-set mIoU when the split has semantic labels: every frame needs its semantic
   map (some missing is an error naming them); a store with none at all (e.g. another tool's
   anomaly-only predictions) gets these metrics listed under ``notes["metrics_not_computed"]``
   and a warning, never a silent omission.

Before any pass the stored frames must come from one configuration (the digest in each score
file, :meth:`PredictionStore.check_single_config`); mixed stores are refused naming frames.

Frames are read with :meth:`Split.load_labels <oodbench.datasets.Split.load_labels>`: images are
never decoded. Pass 2 reuses the (checked) labels and scores pass 1 read while they fit in
``pass2_cache_bytes`` (6 MB per 1024x2048 float16 frame) and re-reads only the rest.

``reduce`` merges accumulator states across processes between passes (identity in one process;
``oodbench.sharding`` passes an all-gather merge), so sharded evaluation gives exactly the
single-process numbers.
"""
from __future__ import annotations

import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from oodbench.errors import OodbenchError

from .contracts import ContractError, check_labels
from .results import DataFingerprint
from .store import PredictionError, PredictionStore

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
        pass2_cache_bytes: how much of pass 1's labels and scores may be kept for the component
            pass (frames beyond it are read again); results do not depend on it.

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
    protocol = protocol or split.protocol
    pixel = M.build_protocol(protocol, **({} if fpr_rule is None else {"fpr_rule": fpr_rule}))
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

    # pass 1: pixel metrics (+ semantic accumulators, which need no threshold)
    fingerprint = DataFingerprint()
    kept: dict[str, tuple[np.ndarray, np.ndarray]] = {}    # for pass 2, bounded by pass2_cache_bytes
    kept_bytes = 0
    for frame, scores, sem in _progress(
        _frame_pairs(split, store, ids, want_semantic), len(ids), f"{split.name}: pixels", progress
    ):
        scores, labels = _checked(frame, scores, store, split.key)
        fingerprint.update(frame.frame_id, labels)
        pixel.update(scores, labels, frame_id=frame.frame_id)
        if components is not None and kept_bytes + scores.nbytes + labels.nbytes <= pass2_cache_bytes:
            kept[frame.frame_id] = (scores, labels)
            kept_bytes += scores.nbytes + labels.nbytes
        if want_semantic:
            if frame.semantic is None:
                raise ContractError(f"{split.name}/{frame.frame_id}: split declares semantic labels but has none")
            pred = sem_map[sem] if sem_map is not None else sem
            if pred.shape != frame.semantic.shape:
                raise PredictionError(
                    f"{store.semantic_path(split.key, frame.frame_id)}: shape {pred.shape} != "
                    f"label shape {frame.semantic.shape}"
                )
            group = split.calibration_group(frame)
            open_set.update(scores, pred, frame.semantic, group=group, frame_id=frame.frame_id)
            # closed-set mIoU over the known classes: anomaly pixels (id K) are ignored (§5.1)
            known_gt = np.where(frame.semantic >= split.num_classes, 255, frame.semantic).astype(np.uint8)
            closed.update(pred, known_gt, frame_id=frame.frame_id)
    pixel = reduce(pixel)
    fingerprint = reduce(fingerprint)
    metrics = dict(pixel.compute())

    # pass 2: SMIYC component metrics at the best pixel-F1 threshold of pass 1
    if components is not None:
        thr = float(metrics["best_f1_threshold"])
        comp = M.SmiycComponentAccumulator(config=components, threshold=thr)
        reread = iter(_frame_pairs(split, store, [f for f in ids if f not in kept], False))
        for fid in _progress(ids, len(ids), f"{split.name}: components", progress):
            if fid in kept:
                scores, labels = kept.pop(fid)
            else:
                frame, scores, _ = next(reread)
                scores, labels = _checked(frame, scores, store, split.key)
            comp.update(scores, labels, frame_id=fid)
        comp = reduce(comp)
        metrics.update(comp.compute())
        notes["component_metrics"] = f"SegEval-{components} @ threshold {thr!r}"

    if want_semantic:
        open_set = reduce(open_set)
        closed = reduce(closed)
        metrics.update(open_set.compute())
        metrics.update(closed.compute())
        if sem_map is not None:
            notes["semantic_mapping"] = "cityscapes19 -> split classes (cityscapes_to_semantic)"

    return EvaluationOutput(
        metrics={k: (float(v) if isinstance(v, (int, float, np.floating, np.integer)) else v) for k, v in metrics.items()},
        protocol=protocol,
        protocol_version=str(getattr(pixel, "version", M.PROTOCOLS.get(protocol, ""))),
        num_frames=len(all_ids),
        data_fingerprint=fingerprint.hexdigest(),
        wall_time_s=time.perf_counter() - t0,
        notes=notes,
        fpr_rule=str(getattr(pixel, "fpr_rule", "")),
    )
