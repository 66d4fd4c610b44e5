"""Golden metric values on fixed inputs (regression): ``tests/golden/metrics_protocols.json``.

Rewritten only by ``pytest --update-golden`` (the project's own pytest plugin); any change of a
number by more than 1e-12 fails with a per-key diff.
"""
from __future__ import annotations

import numpy as np

from oodbench.metrics import ConfusionMatrix, OpenSetMIoU, SmiycComponentAccumulator, pixel_metrics


def _frames(seed: int, n: int = 6, dtype=np.float32):
    rng = np.random.default_rng(seed)
    scores, labels = [], []
    for i in range(n):
        h, w = 40 + 4 * i, 64
        lab = np.zeros((h, w), np.uint8)
        lab[5:15, 10 + i:25 + i] = 1            # one anomaly blob per frame
        lab[:, :3] = 255                        # void border
        s = rng.normal(size=(h, w)) + 2.0 * (lab == 1)
        scores.append(np.round(s, 2).astype(dtype))  # ties
        labels.append(lab)
    return scores, labels


def test_protocol_numbers_are_pinned(oodbench_golden):
    s32, labels = _frames(0)
    s16 = [s.astype(np.float16) for s in s32]
    values = {}
    for rule in ("first_tpr_ge", "nearest_recall", "first_tpr_gt"):
        values[f"exact/{rule}"] = pixel_metrics(s32, labels, protocol="exact", fpr_rule=rule)
    values["smiyc"] = pixel_metrics(s16, labels, protocol="smiyc")
    values["fishyscapes"] = pixel_metrics(s32, labels, protocol="fishyscapes")
    no_void = [np.where(lab == 255, 0, lab).astype(np.uint8) for lab in labels]
    values["streethazards"] = pixel_metrics(s32, no_void, protocol="streethazards")
    comp = SmiycComponentAccumulator(config="ObstacleTrack", threshold=float(values["smiyc"]["best_f1_threshold"]))
    for i, (s, lab) in enumerate(zip(s16, labels)):
        comp.update(s, lab, frame_id=i)
    values["segeval"] = comp.compute()
    rng = np.random.default_rng(1)
    cm, osm = ConfusionMatrix(num_classes=3), OpenSetMIoU(num_known=3)
    for i in range(4):
        gt = rng.integers(0, 3, (16, 16)).astype(np.uint8)
        gt[:4, :4] = 3                                      # anomaly = class K
        pred = np.where(rng.random((16, 16)) < 0.8, gt % 3, rng.integers(0, 3, (16, 16))).astype(np.uint8)
        score = (rng.random((16, 16)) + (gt == 3)).astype(np.float32)
        cm.update(pred, np.where(gt == 3, 255, gt).astype(np.uint8))
        osm.update(score, pred, gt, group="t5" if i % 2 else "t6")
    values["closed"] = cm.compute()
    values["open"] = osm.compute()
    oodbench_golden.check("metrics_protocols", values, abs_tol=1e-12)
