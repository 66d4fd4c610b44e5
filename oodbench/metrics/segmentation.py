"""Semantic segmentation metrics: closed-set mIoU and DenseHybrid's open-set mIoU.

:class:`ConfusionMatrix` -- one dataset-level ``K x K`` confusion matrix (rows GT, columns
prediction; pixels whose GT is ``ignore_index`` are skipped), ``IoU_c = TP / (TP + FP + FN)`` and
``closed_miou = nanmean(IoU)``: a class absent from both GT and prediction (0/0) is left out, a
class only predicted counts as 0 -- the rule of ``matejgrcic/DenseHybrid:utils/iou.py`` and the
Cityscapes-style references (never a per-image mean).

:class:`OpenSetMIoU` -- ``matejgrcic/DenseHybrid@742ceab`` ``evaluate_osr.py`` (docs/benchmarks.md §5.1):
GT ids ``0..K-1`` known, ``K`` anomaly, ``255`` ignore ("other"); predictions ``0..K-1``.  For each
group (StreetHazards town) the anomaly threshold is calibrated on the *other* group: scores are
downsampled by 0.5 (``F.interpolate(..., scale_factor=0.5, mode='bilinear')``, i.e. the float32 mean
of each 2x2 block, ``((tl + tr) + (bl + br)) * 0.25`` in float32 -- bit-identical to torch's CPU
kernel at benchmark sizes (output width >= ~128, e.g. StreetHazards 720x1280); for tiny maps torch
takes a scalar loop that sums the four quarter-weighted terms sequentially, which can differ by one
float32 ulp), labels by nearest (top-left pixel of each block), ignore pixels dropped, all pixels of the group pooled; the threshold is the score at
the first ``sklearn.metrics.roc_curve`` point (``drop_intermediate=True``) with TPR > 0.95.  Pixels
with ``score > threshold`` become class ``K``; per group a ``(K+1)``-class confusion matrix gives
``IoU``; ``open_miou`` = ``nanmean(IoU[:K])``; the final value is the image-count-weighted mean of
the two groups.  ``closed_miou`` is the closed-set mIoU over both groups (anomaly and ignore
pixels skipped).  DenseHybrid scores are float32: float64 inputs are cast to float32.

Passes: a single ``update`` pass stores, per group, the score distribution of each (prediction,
correct / wrong known / anomaly) category (float16: code histograms, constant memory; float32:
the scores) and the half-resolution calibration scores; ``compute`` then calibrates and evaluates
(the second pass runs over the stored distributions, not over images).

:class:`OpenSetFrameCounts` -- the frame bootstrap's state for both: per frame, the open-set
``(K+1)``-class and closed-set ``K``-class counts at thresholds fixed from the full sample
(:meth:`OpenSetMIoU.thresholds`); summed over all frames they reproduce the two accumulators.

State (declared with merge rules, :mod:`._state`): ``matrix`` (sum) for :class:`ConfusionMatrix`;
for :class:`OpenSetMIoU` one ``_Group`` per group key (``keyed``): ``h16`` / ``gt_counts`` /
``num_images`` (sum), ``raw<cat>`` (concatenated) and ``calib`` (a :class:`~._store.ScoreStore`);
for :class:`OpenSetFrameCounts` ``frame_ids``, ``groups``, ``open_counts``, ``closed_counts`` (cat).
"""
from __future__ import annotations

import functools
import json
from typing import Any, ClassVar, Mapping

import numpy as np

from ._base import Accumulator, MetricInputError, warn_nan
from ._curves import F16_CODES_ASC, F16_NONFINITE, F16_VALUES_ASC, fold_f16
from ._inputs import check_scores, to_numpy
from ._state import StateSet
from ._score_store import ScoreStore

__all__ = ["ConfusionMatrix", "OpenSetMIoU", "OpenSetFrameCounts", "half_resolution"]


def _int_map(x: Any, what: str, where: str) -> np.ndarray:
    a = to_numpy(x)
    if a.dtype.kind not in "uib":
        raise MetricInputError(f"{where}: {what} must be an integer class map, got dtype {a.dtype}")
    return a.astype(np.int64, copy=False)


def _open_set_inputs(k: int, scores: Any, semantic_pred: Any, semantic_gt: Any,
                     where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked ``(scores, pred, gt)`` of one open-set frame; float64 scores become float32
    (DenseHybrid's scores are float32 tensors)."""
    s = check_scores(to_numpy(scores), where)
    p = _int_map(semantic_pred, "semantic_pred", where)
    gt = _int_map(semantic_gt, "semantic_gt", where)
    if not (s.shape == p.shape == gt.shape) or s.ndim != 2:
        raise MetricInputError(f"{where}: scores {s.shape}, semantic_pred {p.shape} and "
                               f"semantic_gt {gt.shape} must be equal 2-D shapes")
    if s.dtype == np.float64:
        s = s.astype(np.float32)
    bad_gt = (gt < 0) | ((gt > k) & (gt != 255))
    if bad_gt.any():
        raise MetricInputError(f"{where}: semantic_gt ids {np.unique(gt[bad_gt])[:10].tolist()} "
                               f"are not 0..{k - 1} (known), {k} (anomaly) or 255 (ignore)")
    if p.size and (p.min() < 0 or p.max() >= k):
        raise MetricInputError(f"{where}: semantic_pred must hold ids 0..{k - 1}")
    return s, p, gt


def _iou(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return tp / (tp + fp + fn)


class ConfusionMatrix(Accumulator):
    """Dataset-level confusion matrix -> ``closed_miou`` and ``iou_<c>``.

    Args:
        num_classes: K (predictions and GT ids ``0..K-1``).
        ignore_index: GT id that is skipped (default 255).
    """

    name: ClassVar[str] = "closed-miou"
    version: ClassVar[str] = "1"

    def __init__(self, num_classes: int = 19, ignore_index: int = 255) -> None:
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        super().__init__()
        self.add_state("matrix", np.zeros((self.num_classes, self.num_classes), np.int64), merge="sum")

    def _config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "ignore_index": self.ignore_index}

    def update(self, pred: Any, gt: Any, frame_id: Any = None) -> None:
        """Add one frame: predicted ids ``0..K-1`` and GT ids (``ignore_index`` skipped)."""
        where = self._frame_name(frame_id)
        p, g = _int_map(pred, "pred", where), _int_map(gt, "gt", where)
        if p.shape != g.shape:
            raise MetricInputError(f"{where}: pred shape {p.shape} differs from gt shape {g.shape}")
        keep = g != self.ignore_index
        p, g = p[keep], g[keep]
        k = self.num_classes
        for arr, what in ((p, "pred"), (g, "gt")):
            if arr.size and (arr.min() < 0 or arr.max() >= k):
                bad = np.unique(arr[(arr < 0) | (arr >= k)])[:10].tolist()
                raise MetricInputError(f"{where}: {what} has ids {bad} outside 0..{k - 1}")
        self.matrix += np.bincount(g * k + p, minlength=k * k).reshape(k, k)
        self._num_updates += 1

    def iou(self) -> np.ndarray:
        tp = np.diag(self.matrix)
        return _iou(tp, self.matrix.sum(0) - tp, self.matrix.sum(1) - tp)

    def compute(self) -> dict[str, Any]:
        iou = self.iou()
        miou = float(np.nanmean(iou)) if np.isfinite(iou).any() else warn_nan("mIoU")
        out = {"closed_miou": miou, "num_frames": float(self._num_updates)}
        out.update({f"iou_{c}": float(v) for c, v in enumerate(iou)})
        return self._result(out)


def half_resolution(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DenseHybrid's calibration downsampling (torch bilinear / nearest, ``scale_factor=0.5``)."""
    x = scores.astype(np.float32, copy=False)
    h2, w2 = x.shape[0] // 2, x.shape[1] // 2
    x = x[: 2 * h2, : 2 * w2]
    top = x[0::2, 0::2] + x[0::2, 1::2]                  # rows first, as torch's vectorised
    bottom = x[1::2, 0::2] + x[1::2, 1::2]               # CPU kernel (weights 1/2 are exact)
    out = (top + bottom) * np.float32(0.25)
    return out, labels[: 2 * h2: 2, : 2 * w2: 2]


class _Group(StateSet):
    """Per-group (town) state of :class:`OpenSetMIoU`: ``h16``, ``gt_counts``, ``num_images`` (sum),
    ``raw<cat>`` (float32/64 scores of category ``cat``, concatenated), ``calib`` (a ScoreStore)."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.add_state("h16", np.zeros((3 * k, 65536), np.int64), merge="sum")
        self.add_state("gt_counts", np.zeros(k + 1, np.int64), merge="sum")
        self.add_state("num_images", 0, merge="sum")
        for c in range(3 * k):
            self.add_state(f"raw{c}", [], merge="cat", dtype=np.float32)
        self.add_state("calib", ScoreStore, merge="nested")

    @property
    def raw(self) -> list[list[np.ndarray]]:
        """Per category ``c`` the live list ``raw<c>`` of float32 score arrays."""
        return [getattr(self, f"raw{c}") for c in range(3 * self.k)]

    def count_gt(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Per category: (#scores > t, #scores total)."""
        h = fold_f16(self.h16)[:, F16_CODES_ASC]
        j = int(np.searchsorted(F16_VALUES_ASC, t, side="right"))
        above = h[:, j:].sum(1)
        total = h.sum(1)
        for c, lst in enumerate(self.raw):
            for a in lst:
                above[c] += int(np.count_nonzero(a > t))
                total[c] += a.size
        return above, total


class OpenSetMIoU(Accumulator):
    """DenseHybrid open-set mIoU on StreetHazards (``open_miou``, per group values, ``closed_miou``).

    Args:
        num_known: K, the number of known classes (12 for StreetHazards in DenseHybrid ids).
        tpr: calibration TPR (DenseHybrid ``--tpr``, default 0.95).
    """

    name: ClassVar[str] = "densehybrid-open-miou"
    version: ClassVar[str] = "evaluate_osr@742ceab"

    def __init__(self, num_known: int = 12, tpr: float = 0.95) -> None:
        self.num_known = int(num_known)
        self.tpr = float(tpr)
        super().__init__()
        self.add_state("groups", functools.partial(_Group, self.num_known), merge="keyed")

    def _config(self) -> dict[str, Any]:
        return {"num_known": self.num_known, "tpr": self.tpr}

    def update(self, scores: Any, semantic_pred: Any, semantic_gt: Any, group: str,
               frame_id: Any = None) -> None:
        """Add one image of ``group`` (e.g. the StreetHazards town ``"t5"``)."""
        where = self._frame_name(frame_id)
        k = self.num_known
        s, p, gt = _open_set_inputs(k, scores, semantic_pred, semantic_gt, where)
        g = self.groups.get(str(group)) or _Group(k)
        valid = gt != 255
        gv, pv, sv = gt[valid], p[valid], s[valid]
        cat = pv * 3 + np.where(gv == pv, 0, np.where(gv == k, 2, 1))
        half_s, half_gt = half_resolution(s, gt)
        calib_lab = np.where(half_gt == 255, 255, (half_gt == k)).astype(np.uint8)
        calib = ScoreStore()
        calib.add(half_s, calib_lab, where)
        if s.dtype == np.float16:
            codes = sv.view(np.uint16).astype(np.intp)
            if F16_NONFINITE[codes].any():  # pragma: no cover - check_scores caught it
                raise MetricInputError(f"{where}: non-finite scores")
            g.h16 += np.bincount(cat * 65536 + codes, minlength=3 * k * 65536).reshape(3 * k, 65536)
        else:
            order = np.argsort(cat, kind="stable")
            bounds = np.searchsorted(cat[order], np.arange(3 * k + 1))
            for c in range(3 * k):
                if bounds[c + 1] > bounds[c]:
                    g.raw[c].append(sv[order[bounds[c]:bounds[c + 1]]])
        g.gt_counts += np.bincount(gv, minlength=k + 1)
        g.num_images += 1
        g.calib.merge_from(calib)
        self.groups[str(group)] = g
        self._num_updates += 1

    def threshold(self, calibration_group: str) -> float:
        """The anomaly threshold calibrated on ``calibration_group`` (first TPR > tpr)."""
        summ = self.groups[calibration_group].calib.summary()
        return summ.fpr_at_tpr("first_tpr_gt", self.tpr)[1]

    def _group_iou(self, g: _Group, t: float) -> np.ndarray:
        k = self.num_known
        above, total = g.count_gt(t)
        above, total = above.reshape(k, 3), total.reshape(k, 3)
        below = total - above
        tp = np.empty(k + 1, np.int64)
        fp = np.empty(k + 1, np.int64)
        tp[:k] = below[:, 0]
        fp[:k] = below[:, 1] + below[:, 2]
        tp[k] = above[:, 2].sum()
        fp[k] = above[:, 0].sum() + above[:, 1].sum()
        fn = g.gt_counts - tp
        return _iou(tp, fp, fn)

    def thresholds(self) -> dict[str, float]:
        """``{group: the anomaly threshold applied to it}``, each calibrated on the *other* group.

        Raises:
            MetricInputError: not exactly two groups.
        """
        names = sorted(self.groups)
        if len(names) != 2:
            raise MetricInputError(
                f"open-set mIoU calibrates each group on the other one: exactly 2 groups are needed, "
                f"got {names}")
        return {names[0]: float(self.threshold(names[1])), names[1]: float(self.threshold(names[0]))}

    def compute(self) -> dict[str, Any]:
        return self.metrics_at(self.thresholds())

    def metrics_at(self, thresholds: dict[str, float]) -> dict[str, Any]:
        """The metrics of :meth:`compute` with the given per-group thresholds (``compute()`` is
        ``metrics_at(thresholds())``): lets a caller that needs the thresholds too (the evaluator's
        frame bootstrap) calibrate once, and is the reference of a replicate at fixed thresholds."""
        names = sorted(self.groups)
        if sorted(thresholds) != names or len(names) != 2:
            raise MetricInputError(f"open-set mIoU: thresholds for {sorted(thresholds)} but groups {names}")
        k = self.num_known
        out: dict[str, Any] = {}
        weighted, n_total = 0.0, 0
        for name, other in ((names[0], names[1]), (names[1], names[0])):
            t = thresholds[name]
            iou = self._group_iou(self.groups[name], t)
            miou = float(np.nanmean(iou[:k]))
            n = self.groups[name].num_images
            out[f"open_miou_{name}"] = miou
            out[f"anomaly_iou_{name}"] = float(iou[k])
            out[f"threshold_calibrated_on_{other}"] = float(t)
            out[f"num_images_{name}"] = float(n)
            for c in range(k + 1):
                out[f"iou_{name}_{c}"] = float(iou[c])
            weighted += n * miou
            n_total += n
        out["open_miou"] = weighted / n_total
        # closed set over both groups: anomaly and ignore GT skipped
        tp = np.zeros(k, np.int64)
        fp = np.zeros(k, np.int64)
        gtc = np.zeros(k, np.int64)
        for g in self.groups.values():
            _, total = g.count_gt(np.inf)
            total = total.reshape(k, 3)
            tp += total[:, 0]
            fp += total[:, 1]
            gtc += g.gt_counts[:k]
        out["closed_miou"] = float(np.nanmean(_iou(tp, fp, gtc - tp)))
        return self._result(out)


class OpenSetFrameCounts(Accumulator):
    """Per-frame confusion counts of :class:`OpenSetMIoU` / :class:`ConfusionMatrix` at fixed
    per-group thresholds: the state the frame bootstrap of ``open_miou`` and ``closed_miou``
    resamples (:class:`~._resample.OpenSetResampler`).

    The calibration is a pooled, two-group computation, so -- as for the SegEval components at the
    full-sample pixel threshold -- the thresholds are fixed from the full sample
    (:meth:`OpenSetMIoU.thresholds`) and a replicate sums the drawn frames' counts.  Per frame, at
    its group's threshold (``score > t`` is the anomaly class ``K``; float64 scores compared as
    float32, like :class:`OpenSetMIoU`; ignore pixels dropped): ``open_counts`` = ``tp``, ``fp``,
    ``fn`` of the ``K + 1`` classes; ``closed_counts`` = ``tp``, predicted and GT pixels of the
    ``K`` known classes over known-GT pixels (anomaly and ignore GT skipped, as the evaluator's
    ``ConfusionMatrix``).  Summed over all frames they give exactly the accumulators' metrics.

    Args:
        num_known: K.
        thresholds: ``{group: threshold}`` (or its JSON text, as :meth:`_config` stores it).
    """

    name: ClassVar[str] = "densehybrid-open-miou-frames"
    version: ClassVar[str] = OpenSetMIoU.version

    def __init__(self, num_known: int = 12, thresholds: Mapping[str, float] | str = "{}") -> None:
        self.num_known = int(num_known)
        if isinstance(thresholds, str):
            thresholds = json.loads(thresholds)
        self.thresholds = {str(g): float(t) for g, t in sorted(thresholds.items())}
        super().__init__()
        k = self.num_known
        self.add_state("frame_ids", [], merge="cat", dtype=str, item_shape=())
        self.add_state("groups", [], merge="cat", dtype=str, item_shape=())
        self.add_state("open_counts", [], merge="cat", dtype=np.int64, item_shape=(3, k + 1))
        self.add_state("closed_counts", [], merge="cat", dtype=np.int64, item_shape=(3, k))

    def _config(self) -> dict[str, Any]:
        # JSON floats round-trip exactly (repr), so a restored state merges with the original
        return {"num_known": self.num_known, "thresholds": json.dumps(self.thresholds, sort_keys=True)}

    def update(self, scores: Any, semantic_pred: Any, semantic_gt: Any, group: str,
               frame_id: Any = None) -> None:
        """Add one frame of ``group`` (the arguments of :meth:`OpenSetMIoU.update`)."""
        where = self._frame_name(frame_id)
        name = str(frame_id) if frame_id is not None else f"#{self._num_updates}"
        k = self.num_known
        s, p, gt = _open_set_inputs(k, scores, semantic_pred, semantic_gt, where)
        if str(group) not in self.thresholds:
            raise MetricInputError(f"{where}: group {str(group)!r} has no threshold "
                                   f"(thresholds for {sorted(self.thresholds)})")
        valid = gt != 255
        gv, pv = gt[valid], p[valid]
        # exact comparison: the thresholds are float32 values, float64 holds float16/32 scores exactly
        above = s[valid].astype(np.float64) > self.thresholds[str(group)]
        conf = np.bincount(gv * (k + 1) + np.where(above, k, pv),
                           minlength=(k + 1) ** 2).reshape(k + 1, k + 1)
        tp = np.diag(conf)
        known = gv < k
        gk, pk = gv[known], pv[known]
        self.open_counts.append(np.stack([tp, conf.sum(0) - tp, conf.sum(1) - tp]))
        self.closed_counts.append(np.stack([np.bincount(gk[gk == pk], minlength=k),
                                            np.bincount(pk, minlength=k), np.bincount(gk, minlength=k)]))
        self.frame_ids.append(name)
        self.groups.append(str(group))
        self._num_updates += 1

    def compute(self) -> dict[str, Any]:
        """The full-sample values (every frame once), as the resampler computes them."""
        from ._resample import OpenSetResampler

        res = OpenSetResampler(self)
        return self._result({k: float(v[0]) for k, v in res.metrics(np.ones((1, len(res.frame_ids)))).items()})
