"""Frame bootstrap of open-set and closed-set mIoU (issue #15): per-frame counts at the full-sample
thresholds reproduce ``OpenSetMIoU`` / ``ConfusionMatrix`` exactly, a replicate is the protocol at
those thresholds on the resampled frames, states merge across shards, intervals are deterministic,
shrink with more frames and cover at about the stated rate."""
from __future__ import annotations

import numpy as np
import pytest

from oodbench.metrics import (
    ConfusionMatrix, MetricInputError, OpenSetFrameCounts, OpenSetMIoU, bootstrap_ci, paired_bootstrap,
)
from oodbench.metrics._resample import OpenSetResampler, resampler
from oodbench.metrics.bootstrap import frame_weights

K = 3
KEYS = ("open_miou", "open_miou_A", "open_miou_B", "anomaly_iou_A", "anomaly_iou_B", "closed_miou")


def _frame(rng, dtype, shift=0.0, size=16):
    """One frame: known ids 0..K-1, an anomaly square (id K), an ignore row; noisy predictions and
    scores with a per-frame shift (frames are the correlated unit)."""
    gt = rng.integers(0, K, (size, size))
    y, x = rng.integers(0, size - 5, 2)
    gt[y:y + 4, x:x + 4] = K
    gt[0, :] = 255
    pred = np.where(rng.random(gt.shape) < 0.8, np.where(gt < K, gt, 0), rng.integers(0, K, gt.shape))
    s = rng.random(gt.shape) * 0.5 + (gt == K) * 0.4 + shift + 0.1 * rng.standard_normal()
    return s.astype(dtype), pred, gt


def _data(n_a, n_b, dtype=np.float16, seed=0, size=16):
    rng = np.random.default_rng(seed)
    return ([(*_frame(rng, dtype, size=size), "A") for _ in range(n_a)]
            + [(*_frame(rng, dtype, shift=0.05, size=size), "B") for _ in range(n_b)])


def _reference(data, thresholds=None):
    osm, cm = OpenSetMIoU(num_known=K), ConfusionMatrix(num_classes=K)
    for s, p, gt, g in data:
        osm.update(s, p, gt, group=g)
        cm.update(p, np.where(gt >= K, 255, gt))  # the evaluator's known-class GT
    thr = osm.thresholds() if thresholds is None else thresholds
    return {**osm.metrics_at(thr), **cm.compute()}, thr


def _counts(data, thresholds, ids=None):
    c = OpenSetFrameCounts(num_known=K, thresholds=thresholds)
    for i, (s, p, gt, g) in enumerate(data):
        c.update(s, p, gt, group=g, frame_id=ids[i] if ids else f"f{i}")
    return c


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_full_sample_equals_the_accumulators(dtype):
    data = _data(5, 4, dtype=dtype, seed=1)
    ref, thr = _reference(data)
    got = resampler(_counts(data, thr)).metrics(np.ones((1, len(data))))
    for k in KEYS:
        assert got[k][0] == pytest.approx(ref[k], abs=1e-12), k
    assert 0 < ref["open_miou"] < 1 and 0 < ref["anomaly_iou_A"] < 1


def _reference_acc(data):
    osm = OpenSetMIoU(num_known=K)
    for s, p, gt, g in data:
        osm.update(s, p, gt, group=g)
    return osm


def test_compute_is_metrics_at_the_thresholds():
    osm = _reference_acc(_data(3, 3, seed=2))
    thr = osm.thresholds()
    assert osm.compute() == osm.metrics_at(thr)
    assert set(thr) == {"A", "B"} and osm.compute()["threshold_calibrated_on_B"] == thr["A"]


def test_a_replicate_is_the_protocol_at_fixed_thresholds_on_the_resampled_frames():
    data = _data(6, 5, seed=3)
    _, thr = _reference(data)
    res = resampler(_counts(data, thr))
    w = frame_weights(6, len(data), seed=4).astype(np.float64)
    checked = 0
    for row in w:
        picked = [fr for fr, m in zip(data, row) for _ in range(int(m))]
        if {g for *_, g in picked} != {"A", "B"}:
            continue
        ref, _ = _reference(picked, thr)
        got = res.metrics(row[None])
        for k in KEYS:
            assert got[k][0] == pytest.approx(ref[k], abs=1e-12), k
        checked += 1
    assert checked >= 3


def test_a_group_without_drawn_frames_is_left_out_of_open_miou():
    data = _data(3, 3, seed=5)
    _, thr = _reference(data)
    res = resampler(_counts(data, thr))
    only_a = np.array([[2.0, 2.0, 2.0, 0, 0, 0]])
    got = res.metrics(only_a)
    assert np.isnan(got["open_miou_B"][0]) and np.isnan(got["anomaly_iou_B"][0])
    assert got["open_miou"][0] == got["open_miou_A"][0] == pytest.approx(res.metrics(np.array([[1.0, 1, 1, 0, 0, 0]]))["open_miou_A"][0])


def test_sharded_counts_merge_to_the_single_process_state(tmp_path):
    data = _data(4, 4, dtype=np.float32, seed=6)
    _, thr = _reference(data)
    whole = _counts(data, thr)
    parts = [_counts(data[:3], thr, ids=["f0", "f1", "f2"]), _counts(data[3:], thr, ids=[f"f{i}" for i in range(3, 8)])]
    np.savez(tmp_path / "p1.npz", **parts[1].state_dict())
    merged = OpenSetFrameCounts.merge_states([parts[0].state_dict(), dict(np.load(tmp_path / "p1.npz"))])
    assert merged.frame_ids == whole.frame_ids and merged.groups == whole.groups
    a, b = OpenSetResampler(merged), OpenSetResampler(whole)
    assert np.array_equal(a.open_counts, b.open_counts) and np.array_equal(a.closed_counts, b.closed_counts)
    assert merged.compute() == whole.compute()
    with pytest.raises(Exception, match="different configurations"):
        whole.merge(_counts(data[:1], {"A": 0.1, "B": 0.2}))


def test_bad_inputs_name_the_frame():
    c = OpenSetFrameCounts(num_known=K, thresholds={"A": 0.5, "B": 0.5})
    s, p, gt = _frame(np.random.default_rng(0), np.float32)
    with pytest.raises(MetricInputError, match="'x1'.*group 'C' has no threshold"):
        c.update(s, p, gt, group="C", frame_id="x1")
    with pytest.raises(MetricInputError, match="'x2'.*semantic_gt ids \\[7\\]"):
        c.update(s, p, np.full_like(gt, 7), group="A", frame_id="x2")
    with pytest.raises(ValueError, match="holds no frames"):
        bootstrap_ci(c)


def test_same_seed_identical_intervals_other_seed_differs():
    data = _data(10, 10, seed=7)
    c = _counts(data, _reference(data)[1])
    a, b, d = (bootstrap_ci(c, n=200, seed=s) for s in (3, 3, 4))
    assert a.ci == b.ci and a.ci != d.ci
    for k in KEYS:
        lo, hi = a.ci[k]
        assert lo < hi and lo <= a.point[k] <= hi, k


def test_interval_width_shrinks_as_frames_increase():
    widths = []
    for f in (20, 80, 320):  # fixed thresholds: only the frames change
        data = _data(f // 2, f // 2, seed=f, size=12)
        widths.append({k: hi - lo for k, (lo, hi) in bootstrap_ci(_counts(data, {"A": 0.6, "B": 0.6}),
                                                                  n=300, seed=0).ci.items()})
    for k in ("open_miou", "closed_miou"):
        assert widths[1][k] < 0.8 * widths[0][k] and widths[2][k] < 0.8 * widths[1][k], (k, widths)


def test_method_against_itself_is_exactly_null_and_frames_align_by_id():
    data = _data(6, 6, seed=8)
    thr = _reference(data)[1]
    ids = [f"f{i}" for i in range(12)]
    perm = np.random.default_rng(0).permutation(12)
    a = _counts(data, thr, ids=ids)
    b = _counts([data[i] for i in perm], thr, ids=[ids[i] for i in perm])
    res = paired_bootstrap(a, b, n=200, seed=1)
    assert set(res.metrics) == set(KEYS)
    for k, v in res.metrics.items():
        assert v["delta"] == 0.0 and v["ci"] == (0.0, 0.0) and v["p_value"] == 1.0, k


def test_coverage_of_the_closed_and_open_miou_intervals():
    """The estimand at fixed thresholds is a ratio of expected counts per class; its value is taken
    from one large sample (4000 frames: its interval half width 0.0025 is ~10x below a 40-frame
    interval's 0.024).  150 repetitions of 40 frames, 95 % percentile intervals of 200 replicates.
    Measured: coverage 0.92 (open) and 0.92 (closed); at level 0.80 the same gives 0.78 and 0.74,
    outside the band.  Band [0.87, 0.99]: ~3 binomial sd (0.018) below 0.95 (the percentile interval
    undercovers a little with 40 frames), the ceiling above; a pixel-level bootstrap (far too narrow)
    falls far below it.  Every seed is fixed, so the test is deterministic."""
    thr = {"A": 0.6, "B": 0.6}
    big = _data(2000, 2000, seed=100, size=8)
    truth = _counts(big, thr).compute()
    hits = {"open_miou": 0, "closed_miou": 0}
    reps = 150
    for m in range(reps):
        ci = bootstrap_ci(_counts(_data(20, 20, seed=1000 + m, size=8), thr), n=200, seed=m).ci
        for k in hits:
            hits[k] += ci[k][0] <= truth[k] <= ci[k][1]
    for k, h in hits.items():
        assert 0.87 <= h / reps <= 0.99, (k, h / reps)
