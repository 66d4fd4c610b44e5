"""Component, per-image and segmentation accumulators: semantics, merging, state, errors."""
from __future__ import annotations

import numpy as np
import pytest

from oodbench.metrics import (
    ConfusionMatrix, HendrycksPerImageAccumulator, MetricInputError, OpenSetMIoU,
    SmiycComponentAccumulator, SmiycPixelAccumulator, half_resolution,
)


def _roundtrip(acc):
    return type(acc).from_state(acc.state_dict())


def test_components_siou_ppv_by_hand():
    lab = np.zeros((40, 40), np.uint8)
    lab[2:10, 2:10] = 1                                   # GT A: 64 px
    lab[20:28, 20:28] = 1                                 # GT B: 64 px
    s = np.zeros((40, 40), np.float32)
    s[2:10, 2:12] = 1.0                                   # pred P1: A plus 16 background px
    s[30:38, 30:38] = 1.0                                 # pred P2: 64 px, no GT
    acc = SmiycComponentAccumulator("ObstacleTrack", threshold=0.5)   # filters 50 / 10 px
    acc.update(s, lab, frame_id="toy")
    r = acc.compute()
    assert r["siou"] == pytest.approx((64 / 80 + 0.0) / 2)   # A: 64/(64+16), B: no overlap
    assert r["ppv"] == pytest.approx((64 / 80 + 0.0) / 2)
    assert (r["tp_25"], r["fn_25"], r["fp_25"]) == (1, 1, 1)
    assert (r["tp_75"], r["fn_75"], r["fp_75"]) == (1, 1, 1)
    assert r["f1_25"] == pytest.approx(0.5)


def test_components_size_filters_strict_threshold_and_void():
    lab = np.zeros((30, 30), np.uint8)
    lab[1:4, 1:4] = 1                                     # 9 px GT: < 10 -> void (ObstacleTrack)
    lab[10:20, 10:20] = 1                                 # 100 px GT
    lab[25:, :] = 255
    s = np.zeros((30, 30), np.float16)
    s[10:20, 10:20] = 0.5                                 # exactly the threshold: not > t
    s[25:, :] = 9.0                                       # void: never predicted
    acc = SmiycComponentAccumulator("ObstacleTrack", threshold=0.5)
    acc.update(s, lab)
    with pytest.warns(RuntimeWarning, match="PPV"):
        r = acc.compute()
    assert r["num_gt_components"] == 1 and r["num_pred_components"] == 0 and r["siou"] == 0.0
    assert np.isnan(r["ppv"])


@pytest.mark.filterwarnings("ignore:.*undefined.*:RuntimeWarning")
def test_components_threshold_rounded_like_numpy1():
    # 0.50004 rounds to float16 0.5: numpy 1.x compared float16 maps with the rounded threshold
    lab = np.zeros((10, 10), np.uint8)
    lab[:5] = 1
    s = np.zeros((10, 10), np.float16)
    s[:5] = np.float16(0.5)
    acc = SmiycComponentAccumulator("ObstacleTrack", threshold=0.49998)
    acc.update(s, lab)
    assert acc.compute()["siou"] == 0.0                   # 0.5 > float16(0.49998) == 0.5 is False


def test_component_and_smiyc_state_merge():
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(4):
        lab = np.zeros((40, 40), np.uint8)
        lab[5:20, 5:20] = 1
        lab[30:, :] = 255
        s = (rng.random((40, 40)) + lab * 0.6).astype(np.float16)
        frames.append((s, lab))
    whole = SmiycComponentAccumulator("ObstacleTrack", threshold=0.8)
    parts = [SmiycComponentAccumulator("ObstacleTrack", threshold=0.8) for _ in range(2)]
    pix_whole, pix_parts = SmiycPixelAccumulator(), [SmiycPixelAccumulator(), SmiycPixelAccumulator()]
    for i, (s, lab) in enumerate(frames):
        whole.update(s, lab)
        parts[i // 2].update(s, lab)
        pix_whole.update(s, lab)
        pix_parts[i // 2].update(s, lab)
    merged = SmiycComponentAccumulator.merge_states([p.state_dict() for p in parts])
    a, b = whole.compute(), merged.compute()
    assert {k: a[k] for k in a if k != "protocol"} == {k: b[k] for k in b if k != "protocol"}
    assert _roundtrip(pix_parts[0]).merge(pix_parts[1]).compute() == pix_whole.compute()
    with pytest.raises(ValueError, match="different configurations"):
        parts[0].merge(SmiycComponentAccumulator("ObstacleTrack", threshold=0.7))


def test_hendrycks_per_image_skips_and_rejects_void():
    acc = HendrycksPerImageAccumulator()
    acc.update(np.array([0.1, 0.9, 0.3], np.float32), np.array([0, 1, 0], np.uint8), frame_id="a")
    acc.update(np.array([0.1, 0.2], np.float32), np.array([0, 0], np.uint8), frame_id="no-anomaly")
    acc.update(np.array([0.4, 0.2, 0.3, 0.9], np.float32), np.array([0, 1, 0, 1], np.uint8), frame_id="b")
    r = acc.compute()
    assert (r["num_frames"], r["num_frames_used"], r["num_frames_skipped"]) == (3, 2, 1)
    assert r["auroc"] == pytest.approx((1.0 + 0.5) / 2)
    assert acc.per_image()["no-anomaly"] is None
    assert _roundtrip(acc).compute() == r
    with pytest.raises(MetricInputError, match="frame 'v'.*no void"):
        acc.update(np.zeros(2, np.float32), np.array([0, 255], np.uint8), frame_id="v")
    with pytest.raises(ValueError, match="nearest_recall"):
        HendrycksPerImageAccumulator(fpr_rule="first_tpr_ge")


def test_confusion_matrix_dataset_level_and_nan_rule():
    cm = ConfusionMatrix(num_classes=3)
    cm.update(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 255]))
    cm.update(np.array([0, 1]), np.array([0, 0]))
    r = cm.compute()
    # class 0: TP 2, FP 1, FN 1 -> 0.5; class 1: TP 1, FP 1, FN 1 -> 1/3; class 2 absent -> nan
    assert r["iou_0"] == pytest.approx(0.5) and r["iou_1"] == pytest.approx(1 / 3)
    assert np.isnan(r["iou_2"]) and r["closed_miou"] == pytest.approx((0.5 + 1 / 3) / 2)
    with pytest.raises(MetricInputError, match="pred has ids \\[3\\]"):
        cm.update(np.array([3]), np.array([0]))
    np.testing.assert_equal(_roundtrip(cm).compute(), r)   # NaN-aware equality


def test_half_resolution_matches_torch_interpolate():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    for shape in [(180, 320), (181, 321), (720, 1280)]:   # benchmark sizes (see half_resolution)
        x = (rng.standard_normal(shape) * 100).astype(np.float32)
        lab = rng.integers(0, 14, shape).astype(np.uint8)
        ours, lab2 = half_resolution(x, lab)
        t = torch.nn.functional.interpolate(torch.from_numpy(x)[None, None], scale_factor=0.5,
                                            mode="bilinear")[0, 0].numpy()
        tl = torch.nn.functional.interpolate(torch.from_numpy(lab.astype(np.float32))[None, None],
                                             scale_factor=0.5, mode="nearest")[0, 0].numpy()
        assert np.array_equal(ours, t)
        assert np.array_equal(lab2.astype(np.float32), tl)


def _toy_town(rng, k=3, shift=0.0):
    gt = rng.integers(0, k, (16, 16))
    gt[4:8, 4:8] = k                                      # anomaly
    gt[0, :] = 255
    pred = np.where(rng.random((16, 16)) < 0.8, np.where(gt < k, gt, 0), rng.integers(0, k, (16, 16)))
    s = (rng.random((16, 16)) * 0.5 + (gt == k) * 0.5 + shift).astype(np.float16)
    return s, pred, gt


def _densehybrid_open_miou(data, k=3, tpr=0.95):
    """DenseHybrid's open-set mIoU written from docs/benchmarks.md §5.1 (``matejgrcic/DenseHybrid:evaluate_osr.py``):
    per group, threshold = the ``sklearn.roc_curve`` threshold at the first TPR > 0.95 on the *other*
    group's score maps halved by torch (bilinear scores, nearest labels, ignore dropped); pixels above
    it are predicted as class k; IoU from the (k+1)-class confusion of non-ignore pixels; nanmean over
    the k known classes; groups weighted by image count."""
    import torch
    import torch.nn.functional as F
    from sklearn.metrics import roc_curve

    groups = sorted({g for *_, g in data})

    def threshold(group):
        ys, ss = [], []
        for s, _, gt, g in data:
            if g != group:
                continue
            hs = F.interpolate(torch.from_numpy(s.astype(np.float32))[None, None], scale_factor=0.5,
                               mode="bilinear")[0, 0].numpy()
            hg = F.interpolate(torch.from_numpy(gt.astype(np.float32))[None, None], scale_factor=0.5,
                               mode="nearest")[0, 0].numpy()
            keep = hg != 255
            ys.append((hg[keep] == k).astype(int))
            ss.append(hs[keep])
        fpr, tprs, thr = roc_curve(np.concatenate(ys), np.concatenate(ss))
        return thr[np.flatnonzero(tprs > tpr)[0]]

    total, n_total = 0.0, 0
    for group, other in zip(groups, groups[::-1]):
        t = threshold(other)
        conf = np.zeros((k + 1, k + 1), np.int64)
        frames = [(s, p, gt) for s, p, gt, g in data if g == group]
        for s, p, gt in frames:
            pred = np.where(s.astype(np.float32) > t, k, p)
            keep = gt != 255
            np.add.at(conf, (gt[keep], pred[keep]), 1)
        tp = np.diag(conf)
        with np.errstate(invalid="ignore"):
            iou = tp / (conf.sum(0) + conf.sum(1) - tp)
        total += len(frames) * np.nanmean(iou[:k])
        n_total += len(frames)
    return total / n_total


def test_open_set_miou_merge_state_and_errors():
    rng = np.random.default_rng(4)
    data = [(*_toy_town(rng), "A") for _ in range(3)] + [(*_toy_town(rng, shift=0.1), "B") for _ in range(2)]
    whole = OpenSetMIoU(num_known=3)
    parts = [OpenSetMIoU(num_known=3), OpenSetMIoU(num_known=3)]
    for i, (s, p, g, town) in enumerate(data):
        whole.update(s, p, g, group=town)
        parts[i % 2].update(s, p, g, group=town)
        if i == 0:
            with pytest.raises(MetricInputError, match="exactly 2 groups"):
                whole.compute()
    r = whole.compute()
    assert r["open_miou"] == pytest.approx(_densehybrid_open_miou(data), abs=1e-12) and r["num_images_A"] == 3
    assert r["open_miou"] == pytest.approx((3 * r["open_miou_A"] + 2 * r["open_miou_B"]) / 5)
    merged = OpenSetMIoU.merge_states([p.state_dict() for p in parts]).compute()
    assert merged == r
    f32 = OpenSetMIoU(num_known=3)
    for s, p, g, town in data:
        f32.update(s.astype(np.float32), p, g, group=town)
    assert f32.compute()["open_miou"] == pytest.approx(r["open_miou"], abs=1e-15)
    with pytest.raises(MetricInputError, match="semantic_gt ids \\[7\\]"):
        whole.update(data[0][0], data[0][1], np.full((16, 16), 7), group="A")
