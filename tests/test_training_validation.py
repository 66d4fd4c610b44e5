"""Training-time anomaly monitor (oodbench/training/validation.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_curve

from oodbench.contracts import Frame
from oodbench.datasets import DATASETS, Split
from oodbench.training.validation import make_anomaly_validator, pooled_ap_fpr95


def _sk(scores, labels):
    keep = (labels == 0) | (labels == 1)
    s, y = scores[keep], labels[keep]
    fpr, tpr, _ = roc_curve(y, s)
    return average_precision_score(y, s), fpr[np.argmax(tpr >= 0.95)]


@pytest.mark.parametrize("decimals", [None, 1])  # continuous scores and heavy ties
def test_pooled_metrics_match_sklearn(decimals):
    rng = np.random.default_rng(0)
    s = rng.normal(size=4000)
    if decimals is not None:
        s = s.round(decimals)
    y = (rng.random(4000) < np.where(s > 0, 0.4, 0.1)).astype(np.uint8)
    y[::50] = 255  # ignored
    ap, fpr = pooled_ap_fpr95(s, y)
    ap_ref, fpr_ref = _sk(s, y)
    assert ap == pytest.approx(ap_ref, abs=1e-12) and fpr == pytest.approx(fpr_ref, abs=1e-12)


def test_pooled_metrics_edge_cases():
    assert np.isnan(pooled_ap_fpr95(np.ones(3), np.zeros(3))[0])  # no positives
    assert pooled_ap_fpr95(np.array([0.0, 1.0]), np.array([0, 1])) == (1.0, 0.0)  # perfect detector


class _TinySplit(Split):
    name = "test-training-tiny-val"
    benchmark = "test"

    def frame_ids(self):
        return ["a", "b"]

    def load(self, fid):
        img = np.zeros((8, 8, 3), np.uint8)
        label = np.zeros((8, 8), np.uint8)
        label[2:4, 2:4] = 1
        label[0] = 255
        img[label == 1] = 250  # the anomaly is bright
        return Frame(fid, img, label)


def test_validator_runs_model_and_reports_per_split(tmp_path):
    DATASETS.register(_TinySplit.name, _TinySplit)
    try:
        model = torch.nn.Conv2d(3, 2, 1)
        with torch.no_grad():
            model.weight.fill_(1.0)
            model.bias.zero_()

        def score(out):  # brightness as the anomaly score
            return out[:, 0]

        validate = make_anomaly_validator(tmp_path, [_TinySplit.name], score_fn=score)
        got = validate(model, 3)
        assert got == {f"{_TinySplit.name}/AP": 1.0, f"{_TinySplit.name}/FPR95": 0.0}
    finally:
        DATASETS.unregister(_TinySplit.name)
