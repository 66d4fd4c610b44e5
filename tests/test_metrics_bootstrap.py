"""Frame bootstrap (oodbench.metrics.bootstrap): replicates equal the protocol on resampled frames,
intervals are deterministic, cover the truth at about the stated rate and shrink with more frames;
paired comparisons are exactly null for a method against itself and detect a better method."""
from __future__ import annotations

import math

import numpy as np
import pytest

from oodbench.metrics import (
    ExactPixelAccumulator, FrameCollector, MetricInputError, HendrycksPerImageAccumulator, SmiycComponentAccumulator,
    SmiycPixelAccumulator, bootstrap_ci, paired_bootstrap,
)
from oodbench.metrics._resample import resampler
from oodbench.metrics.bootstrap import frame_weights


def _frames(n, seed=0, shape=(40, 60), sep=1.2, dtype=np.float16, void=0.05, shift=0.3):
    """Synthetic frames: per-frame score shift (frames are the correlated unit), sigmoid scores."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        lab = rng.choice(np.array([0, 1, 255], np.uint8), size=shape, p=[0.9 - void, 0.1, void])
        z = rng.standard_normal(shape) + sep * (lab == 1) + shift * rng.standard_normal()
        out.append(((1.0 / (1.0 + np.exp(-z))).astype(dtype), lab))
    return out


def _blob_frames(n, seed=0):
    """Frames with anomaly blobs and blobby detections (SegEval has components to count)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        lab = np.zeros((48, 64), np.uint8)
        s = rng.random((48, 64)).astype(np.float32) * 0.5
        for _ in range(rng.integers(1, 4)):
            y, x, h, w = rng.integers(0, 36), rng.integers(0, 50), rng.integers(4, 12), rng.integers(4, 14)
            lab[y:y + h, x:x + w] = 1
            dy, dx = rng.integers(-3, 4, 2)
            s[max(y + dy, 0):y + dy + h, max(x + dx, 0):x + dx + w] += rng.uniform(0.3, 0.6)
        lab[:4] = 255
        out.append((s, lab))
    return out


def _collect(frames, ids=None, **kw):
    col = FrameCollector(**kw)
    for i, (s, lab) in enumerate(frames):
        col.update(s, lab, frame_id=ids[i] if ids else f"f{i}")
    return col


# -- the binned pooled metrics ------------------------------------------------------------------
@pytest.mark.parametrize("rule", ["first_tpr_ge", "nearest_recall", "first_tpr_gt"])
def test_collector_equals_exact_accumulator_on_float16_scores(rule):
    frames = _frames(8, seed=3)
    # coarse scores: many ties between anomaly and inlier pixels exercise every tie rule
    frames += [(np.round(s.astype(np.float32) * 20).astype(np.float16) / np.float16(20), lab)
               for s, lab in _frames(4, seed=4)]
    exact = ExactPixelAccumulator(fpr_rule=rule)
    for s, lab in frames:
        exact.update(s, lab)
    got, ref = _collect(frames, fpr_rule=rule).compute(), exact.compute()
    for k in ("auprc", "auroc", "fpr95"):
        assert got[k] == pytest.approx(ref[k], abs=1e-12), k
    assert got["num_anomaly_pixels"] == ref["num_anomaly_pixels"]
    assert got["num_void_pixels"] == ref["num_void_pixels"]


def test_collector_binning_error_is_small_on_float32_scores_with_few_bins():
    # max-logit-like unbounded float32 scores, 16x fewer bins than distinct codes
    rng = np.random.default_rng(5)
    frames = []
    for _ in range(6):
        lab = rng.choice(np.array([0, 1, 255], np.uint8), size=(120, 160), p=[0.85, 0.05, 0.10])
        frames.append(((rng.standard_normal(lab.shape) * 2 + 3 * (lab == 1) + 5).astype(np.float32), lab))
    exact = ExactPixelAccumulator()
    for s, lab in frames:
        exact.update(s, lab)
    col = _collect(frames, max_bins=2048)
    got, ref = col.compute(), exact.compute()
    assert got["num_bins"] <= 2048
    for k in ("auprc", "auroc", "fpr95"):
        assert abs(got[k] - ref[k]) < 1e-3, (k, got[k], ref[k])


def test_full_float32_codes_are_exact_on_wide_ranging_scores():
    # mantissa_bits=23 keeps every float32 value; scores over +-1e3 take the sorted (sparse) path
    rng = np.random.default_rng(7)
    frames = []
    for _ in range(4):
        lab = rng.choice(np.array([0, 1, 255], np.uint8), size=(30, 40), p=[0.8, 0.15, 0.05])
        s = rng.standard_normal(lab.shape) * 300 + 200 * (lab == 1)
        s[0, :3] = [-0.0, 0.0, 1e-30]
        frames.append((s.astype(np.float32), lab))
    exact = ExactPixelAccumulator(fpr_rule="first_tpr_gt")
    for s, lab in frames:
        exact.update(s, lab)
    got, ref = _collect(frames, mantissa_bits=23, fpr_rule="first_tpr_gt").compute(), exact.compute()
    for k in ("auprc", "auroc", "fpr95"):
        assert got[k] == pytest.approx(ref[k], abs=1e-12), k


def test_collector_state_merges_and_round_trips(tmp_path):
    frames = _frames(6, seed=1)
    whole = _collect(frames)
    a, b = _collect(frames[:4]), _collect(frames[4:], ids=["f4", "f5"])
    np.savez(tmp_path / "b.npz", **b.state_dict())
    merged = FrameCollector.merge_states([a.state_dict(), dict(np.load(tmp_path / "b.npz"))])
    assert merged.frame_ids == whole.frame_ids
    ra, rb = bootstrap_ci(whole, n=50, seed=2), bootstrap_ci(merged, n=50, seed=2)
    assert ra.ci == rb.ci


# -- replicate = protocol on the resampled frames -----------------------------------------------
def _repeat(frames, w):
    return [fr for fr, k in zip(frames, w) for _ in range(int(k))]


def test_replicates_equal_the_accumulators_on_resampled_frames():
    frames = _frames(7, seed=6, dtype=np.float16)
    blobs = _blob_frames(7, seed=6)
    w = frame_weights(3, 7, seed=11).astype(np.float64)
    col = _collect(frames)
    sm = SmiycPixelAccumulator()
    ph = HendrycksPerImageAccumulator()
    for s, lab in frames:
        sm.update(s, lab)
        ph.update(s, (lab == 1).astype(np.uint8))
    comp = SmiycComponentAccumulator("ObstacleTrack", threshold=0.45)
    for s, lab in blobs:
        comp.update(s, lab)
    for r in range(w.shape[0]):
        picked, picked_blobs = _repeat(frames, w[r]), _repeat(blobs, w[r])
        refs = {}
        exact, smr, phr = ExactPixelAccumulator(), SmiycPixelAccumulator(), HendrycksPerImageAccumulator()
        compr = SmiycComponentAccumulator("ObstacleTrack", threshold=0.45)
        for s, lab in picked:
            exact.update(s, lab)
            smr.update(s, lab)
            phr.update(s, (lab == 1).astype(np.uint8))
        for s, lab in picked_blobs:
            compr.update(s, lab)
        refs = {col: exact.compute(), sm: smr.compute(), ph: phr.compute(), comp: compr.compute()}
        for acc, ref in refs.items():
            got = resampler(acc).metrics(w[r:r + 1])
            for k, v in got.items():
                assert v[0] == pytest.approx(ref[k], abs=1e-12), (type(acc).__name__, k)


def _top_tie_frames(rng):
    """float16 frames whose top bins tie across frames with different anomaly / inlier mixes."""
    out = []
    for anomaly_top, inlier_top, lower in ((40, 0, 0), (0, 7, 0), (12, 3, 10), (40, 0, 10)):
        lab = np.zeros((40, 60), np.uint8)
        s = rng.uniform(0.0, 0.9, lab.shape)
        lab.reshape(-1)[:anomaly_top] = 1
        s.reshape(-1)[: anomaly_top + inlier_top] = 0.999
        lab.reshape(-1)[100:100 + lower] = 1          # anomaly pixels lower down
        out.append((s.astype(np.float16), lab))
    return out


@pytest.mark.parametrize("case", ["official", "top-ties"])
def test_smiyc_replicates_equal_the_curve_on_many_draws(case, monkeypatch):
    """The SMIYC replicate formulas (sums over the thresholds where TP moves, with the curve's
    stand-alone first point) against the accumulator on the resampled frames.

    ``official``: float16 scores (ties across frames below the top), frames without anomalies and a
    frame whose top bin holds every anomaly pixel (the first point reaches TPR 0.95 when that frame
    is drawn alone).  ``top-ties``: frames whose top bins share one threshold with different mixes,
    where the first point's row is a convention (documented): the accumulator is told to take the
    first drawn frame's top row instead of numpy 1.23's argsort pick, so both build one curve."""
    rng = np.random.default_rng(21)
    if case == "official":
        frames = _frames(6, seed=21)
        lab = np.zeros((40, 60), np.uint8)
        lab[:5, :8] = 1
        frames.append((np.where(lab == 1, 0.999, rng.uniform(0.0, 0.9, lab.shape)).astype(np.float16), lab))
        frames.append((rng.uniform(0, 0.9, (40, 60)).astype(np.float16), np.zeros((40, 60), np.uint8)))
    else:
        frames = _top_tie_frames(rng)
        import oodbench.metrics.smiyc as smiyc_mod

        monkeypatch.setattr(smiyc_mod, "np1_argsort_at",
                            lambda thr, _: int(np.flatnonzero(thr == thr.max())[0]))
    sm = SmiycPixelAccumulator()
    for s, lab in frames:
        sm.update(s, lab)
    w = frame_weights(40, len(frames), seed=5).astype(np.float64)
    w[0] = 0
    if case == "official":
        w[0, 6], w[0, 7] = 1, 3               # the all-in-top-bin frame alone, with inlier frames
    else:
        w[0, 0], w[0, 1] = 1, 1               # first point (40, 0) tops a tied column (40, 7)
    got = resampler(sm).metrics(w)
    for r in range(w.shape[0]):
        ref = SmiycPixelAccumulator()
        for s, lab in _repeat(frames, w[r]):
            ref.update(s, lab)
        if ref.n_pos == 0:
            assert all(np.isnan(v[r]) for v in got.values())
            continue
        want = ref.compute()
        for k, v in got.items():
            assert v[r] == pytest.approx(want[k], abs=1e-12), (r, k)
    assert got["fpr95"][0] == 0.0 and got["auprc"][0] == 1.0
    with pytest.raises(ValueError, match="multiplicities"):
        resampler(sm).metrics(np.full((1, len(frames)), 0.5))


def test_point_equals_compute_for_every_source():
    frames = _frames(5, seed=8)
    sm = SmiycPixelAccumulator()
    for s, lab in frames:
        sm.update(s, lab)
    comp = SmiycComponentAccumulator("ObstacleTrack", threshold=0.45)
    for s, lab in _blob_frames(5, seed=8):
        comp.update(s, lab)
    for acc in (sm, comp):
        res, ref = bootstrap_ci(acc, n=20), acc.compute()
        assert res.point == pytest.approx({k: ref[k] for k in res.point}, abs=1e-12)
        assert res.point["siou" if acc is comp else "auprc"] > 0


# -- intervals -----------------------------------------------------------------------------------
def test_same_seed_identical_intervals_and_other_seed_differs():
    col = _collect(_frames(12, seed=2))
    a, b, c = (bootstrap_ci(col, n=200, seed=s) for s in (7, 7, 8))
    assert a.ci == b.ci and all(np.array_equal(a.replicates[k], b.replicates[k]) for k in a.ci)
    assert a.ci != c.ci
    assert a.as_json()["bootstrap"] == {"n": 200, "level": 0.95, "seed": 7, "unit": "frame",
                                        "method": "percentile"}
    assert set(a.as_json()["ci"]) == {"auprc", "auroc", "fpr95"}
    for k, (lo, hi) in a.ci.items():
        assert lo <= a.point[k] <= hi, k


def test_interval_width_shrinks_as_frames_increase():
    widths = []
    for f in (10, 40, 160):
        res = bootstrap_ci(_collect(_frames(f, seed=f, shape=(20, 30))), n=300, seed=0)
        widths.append({k: hi - lo for k, (lo, hi) in res.ci.items()})
    for k in ("auprc", "auroc", "fpr95"):
        # 4x the frames: about half the width (1/sqrt(4)); allow generous noise
        assert widths[1][k] < 0.8 * widths[0][k] and widths[2][k] < 0.8 * widths[1][k], (k, widths)


def test_bca_interval_brackets_the_point_and_follows_the_skew():
    col = _collect(_frames(25, seed=9))
    pct, bca = bootstrap_ci(col, n=400, seed=1), bootstrap_ci(col, n=400, seed=1, method="bca")
    assert np.array_equal(pct.replicates["auroc"], bca.replicates["auroc"])
    for k, (lo, hi) in bca.ci.items():
        assert lo < bca.point[k] < hi
        # the same replicates: BCa only moves the quantile levels, so the width stays comparable
        assert 0.5 < (hi - lo) / (pct.ci[k][1] - pct.ci[k][0]) < 2.0


def test_coverage_of_the_pooled_auroc_interval():
    """250 repetitions: 60 frames each (50 inlier + 5 anomaly pixels, frame shift u ~ N(0, 0.5^2),
    anomaly +1), 95 % percentile interval from 200 replicates.  Large-sample pooled AUROC (pairs from
    independent frames) = Phi(1 / sqrt(2 + 2 * 0.25)); same-frame pairs bias the 60-frame estimate
    by < 5e-4, far below its standard error.  Measured: coverage 0.952 here, 0.796 for level 0.80
    (30 frames of twice the size: 0.908, the percentile interval undercovers with few clusters).
    Band [0.90, 0.99]: the binomial sd of a 0.95 coverage over 250 repetitions is 0.014, so the band
    is ~3 sd away on both sides, while a wrong level (0.80) or a pixel-level bootstrap (far too
    narrow) falls outside it.  Every seed is fixed, so the test is deterministic."""
    truth = 0.5 * (1 + math.erf(1 / math.sqrt(2 + 2 * 0.25) / math.sqrt(2)))
    rng = np.random.default_rng(123)
    lab = np.r_[np.zeros(50), np.ones(5)].astype(np.uint8)
    hits = 0
    reps = 250
    for m in range(reps):
        col = FrameCollector(max_bins=512)
        for f in range(60):
            s = rng.standard_normal(55) + lab + 0.5 * rng.standard_normal()
            col.update(s.astype(np.float16), lab, frame_id=str(f))
        lo, hi = bootstrap_ci(col, n=200, seed=m).ci["auroc"]
        hits += lo <= truth <= hi
    assert 0.90 <= hits / reps <= 0.99, hits / reps


# -- paired ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["collector", "smiyc", "components", "per_image"])
def test_method_against_itself_is_exactly_null(kind):
    frames = _blob_frames(10, seed=4) if kind == "components" else _frames(10, seed=4)
    if kind == "collector":
        src = _collect(frames)
    else:
        src = {"smiyc": SmiycPixelAccumulator(), "per_image": HendrycksPerImageAccumulator(),
               "components": SmiycComponentAccumulator("ObstacleTrack", threshold=0.45)}[kind]
        for s, lab in frames:
            src.update(s, (lab == 1).astype(np.uint8) if kind == "per_image" else lab)
    res = paired_bootstrap(src, src, n=200, seed=3)
    assert res.metrics
    for k, v in res.metrics.items():
        assert v["delta"] == 0.0 and v["ci"] == (0.0, 0.0) and v["p_value"] == 1.0, k
    js = res.as_json()
    assert js["paired"]["siou" if kind == "components" else "auroc"]["p_value"] == 1.0


def test_clearly_better_method_has_small_p_value_and_positive_interval():
    base = _frames(30, seed=12, sep=0.8)
    rng = np.random.default_rng(0)
    # method b: the same frames, more anomaly separation (same labels, same frame ids)
    better = [((s.astype(np.float32) + 0.25 * (lab == 1) + 0.02 * rng.standard_normal(s.shape)).astype(np.float16), lab)
              for s, lab in base]
    res = paired_bootstrap(_collect(better), _collect(base), n=500, seed=0)
    for k in ("auprc", "auroc"):
        v = res.metrics[k]
        assert v["delta"] > 0 and v["ci"][0] > 0 and v["p_value"] < 0.01, (k, v)
    assert res.metrics["fpr95"]["delta"] < 0 and res.metrics["fpr95"]["p_value"] < 0.01


def test_paired_aligns_frames_by_id_and_refuses_other_frames():
    frames = _frames(8, seed=5)
    ids = [f"f{i}" for i in range(8)]
    a = _collect(frames, ids=ids)
    perm = [3, 0, 7, 1, 6, 2, 5, 4]
    b = _collect([frames[i] for i in perm], ids=[ids[i] for i in perm])
    res = paired_bootstrap(a, b, n=100, seed=1)
    assert all(v["delta"] == 0.0 and v["ci"] == (0.0, 0.0) and v["p_value"] == 1.0
               for v in res.metrics.values())
    c = _collect(frames[:7] + frames[:1], ids=ids[:7] + ["other"])
    with pytest.raises(ValueError, match="same frames.*only in a: \\['f7'\\].*only in b: \\['other'\\]"):
        paired_bootstrap(a, c, n=10)
    with pytest.raises(TypeError, match="like with like"):
        paired_bootstrap(a, SmiycPixelAccumulator(), n=10)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_collector_rejects_non_finite_scores_naming_the_frame(dtype):
    s = np.zeros((4, 4), dtype)
    s[1, 1] = np.nan
    with pytest.raises(MetricInputError, match="'f9'.*NaN"):
        FrameCollector().update(s, np.zeros((4, 4), np.uint8), frame_id="f9")


def test_bad_arguments_raise():
    col = _collect(_frames(3))
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci(col, level=1.5)
    with pytest.raises(ValueError, match="n must"):
        bootstrap_ci(col, n=0)
    with pytest.raises(ValueError, match="method"):
        bootstrap_ci(col, method="basic")
    with pytest.raises(TypeError, match="no frame bootstrap for ExactPixelAccumulator"):
        bootstrap_ci(ExactPixelAccumulator())


def test_p_value_agrees_with_the_percentile_interval():
    """p < 1 - level exactly when 0 is outside the percentile interval of the same replicates."""
    from oodbench.metrics.bootstrap import paired_bootstrap

    rng = np.random.default_rng(11)
    checked = 0
    for shift in (0.0, 0.02, 0.05, 0.1, 0.3):
        a, b = FrameCollector(), FrameCollector()
        for i in range(40):
            lab = (rng.random((20, 20)) < 0.1).astype(np.uint8)
            base = rng.random((20, 20)).astype(np.float32)
            a.update(base + lab * (0.5 + shift + 0.4 * rng.standard_normal()), lab, frame_id=f"f{i}")
            b.update(base + lab * 0.5, lab, frame_id=f"f{i}")
        res = paired_bootstrap(a, b, n=400, level=0.9, seed=3)
        for k, v in res.metrics.items():
            d = res.replicates[k]
            outside = not (v["ci"][0] <= 0.0 <= v["ci"][1])
            below = (1 + np.count_nonzero(d <= 0)) / (d.size + 1)
            above = (1 + np.count_nonzero(d >= 0)) / (d.size + 1)
            assert v["p_value"] == pytest.approx(min(1.0, 2 * min(below, above))), k
            if abs(v["p_value"] - 0.1) > 0.02:          # away from the boundary, where the +1 and the
                assert outside == (v["p_value"] < 0.1), (shift, k, v)   # quantile rule may disagree
                checked += 1
    assert checked >= 10
