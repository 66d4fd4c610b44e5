"""Training-time anomaly monitor (oodbench/training/validation.py) on a registered stand-in split."""
from __future__ import annotations

import numpy as np
import torch

from oodbench.contracts import Frame
from oodbench.datasets import DATASETS, Split
from oodbench.training.validation import make_anomaly_validator


class _TinySplit(Split):
    name = "test-training-tiny-val"
    benchmark = "test"

    def frame_ids(self):
        return ["a", "b"]

    no_anomaly = False

    def load(self, fid):
        img = np.zeros((8, 8, 3), np.uint8)
        label = np.zeros((8, 8), np.uint8)
        label[2:4, 2:4] = 0 if self.no_anomaly else 1
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
        n = _TinySplit.name
        assert got == {f"{n}/auprc": 1.0, f"{n}/auroc": 1.0, f"{n}/fpr95": 0.0}
        inverted = make_anomaly_validator(tmp_path, [n], score_fn=lambda out: -out[:, 0], max_frames=1)(model, 4)
        assert inverted[f"{n}/auprc"] < 0.5 and inverted[f"{n}/fpr95"] == 1.0
        # a split without anomaly pixels reports NaN instead of stopping the training
        dark = make_anomaly_validator(tmp_path, [n], score_fn=score)
        _TinySplit.no_anomaly = True
        got = dark(model, 5)
        assert all(np.isnan(v) for v in got.values())
    finally:
        _TinySplit.no_anomaly = False
        DATASETS.unregister(_TinySplit.name)
