"""SegEval's per-frame contingency table is built without sorting (``components._dense``); the
component values must stay *exactly* those of the sort-based construction (``np.unique(...,
return_inverse=True)``) it replaced, which is kept below as the reference."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from oodbench.metrics.components import COMPONENT_CONFIGS, TAUS, _STRUCT, _dense, _threshold_in_dtype, frame_components


def _reference(scores, labels, threshold, min_pred, min_gt):
    """The previous frame_components (np.unique-based table), unchanged."""
    t = _threshold_in_dtype(float(threshold), scores.dtype)
    gt_ids, _ = ndimage.label(labels == 1, _STRUCT)
    pred_ids, n_pred = ndimage.label((scores > t) & (labels != 255), _STRUCT)
    sizes = np.bincount(pred_ids.reshape(-1), minlength=n_pred + 1)
    keep = sizes >= min_pred
    keep[0] = False
    pred_ids = np.where(keep[pred_ids], pred_ids, 0)
    small = np.bincount(gt_ids.reshape(-1)) < min_gt
    roi = (labels != 255) & ~small[gt_ids]
    g = gt_ids[roi].astype(np.int64)
    p = pred_ids[roi].astype(np.int64)
    if g.size:
        gu, g_inv = np.unique(g, return_inverse=True)
        pu, p_inv = np.unique(p, return_inverse=True)
        table = np.bincount(g_inv * pu.size + p_inv, minlength=gu.size * pu.size).reshape(gu.size, pu.size)
    else:
        gu = pu = np.zeros(0, np.int64)
        table = np.zeros((0, 0), np.int64)
    g_rows, p_cols = np.flatnonzero(gu > 0), np.flatnonzero(pu > 0)
    bg_row, bg_col = np.flatnonzero(gu == 0), np.flatnonzero(pu == 0)
    c0_by_pred = table[bg_row[0]] if bg_row.size else np.zeros(pu.size, np.int64)
    c0_by_gt = table[:, bg_col[0]] if bg_col.size else np.zeros(gu.size, np.int64)
    siou_gt = []
    for r in g_rows:
        touch = p_cols[table[r, p_cols] > 0]
        siou_gt.append(int(table[r, touch].sum()) / (int(table[r].sum()) + int(c0_by_pred[touch].sum())))
    siou_pred, prec = [], []
    for c in p_cols:
        touch = g_rows[table[g_rows, c] > 0]
        inter, size = int(table[touch, c].sum()), int(table[:, c].sum())
        siou_pred.append(inter / (size + int(c0_by_gt[touch].sum())))
        prec.append(inter / size)
    out = {"siou_gt": np.array(siou_gt, np.float64), "siou_pred": np.array(siou_pred, np.float64),
           "prec_pred": np.array(prec, np.float64)}
    out["tp"] = np.array([np.count_nonzero(out["siou_gt"] >= t_) for t_ in TAUS], np.int64)
    out["fn"] = np.array([np.count_nonzero(out["siou_gt"] < t_) for t_ in TAUS], np.int64)
    out["fp"] = np.array([np.count_nonzero(out["prec_pred"] < t_) for t_ in TAUS], np.int64)
    return out


def _frame(seed: int, h: int, w: int, blobs: int, void: float, dtype):
    """Labels with rectangular anomalies of many sizes (some below min_gt), random void, and
    scores raised on (and around) the anomalies plus noise, so predicted components merge, split,
    touch several GT components and fall below min_pred."""
    rng = np.random.default_rng(seed)
    lab = np.zeros((h, w), np.uint8)
    s = rng.normal(0.0, 1.0, (h, w))
    for _ in range(blobs):
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        bh, bw = int(rng.integers(1, max(2, h // 3))), int(rng.integers(1, max(2, w // 3)))
        lab[y:y + bh, x:x + bw] = 1
        s[max(0, y - 2):y + bh + 2, max(0, x - 2):x + bw + 2] += rng.uniform(0.5, 3.0)
    lab[rng.random((h, w)) < void] = 255
    if void > 0:
        lab[: int(rng.integers(0, h // 4 + 1))] = 255
    return s.astype(dtype), lab


def _assert_identical(got, want):
    assert set(got) == set(want)
    for k in want:
        assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape, k
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)  # exact, not approximate


@pytest.mark.parametrize("config", sorted(COMPONENT_CONFIGS))
@pytest.mark.parametrize("seed", range(12))
def test_component_values_equal_the_sort_based_table(seed, config):
    min_pred, min_gt = COMPONENT_CONFIGS[config]
    dtype = np.float16 if seed % 2 else np.float32
    s, lab = _frame(seed, 120 + 7 * seed, 200, blobs=1 + seed % 9, void=(seed % 4) * 0.03, dtype=dtype)
    for thr in (0.0, 0.8, 1.7, 3.0):
        _assert_identical(frame_components(s, lab, thr, min_pred, min_gt), _reference(s, lab, thr, min_pred, min_gt))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(1, 48), w=st.integers(1, 48), blobs=st.integers(0, 12),
       void=st.sampled_from([0.0, 0.05, 0.5, 1.0]), thr=st.floats(-1.0, 4.0),
       min_pred=st.integers(0, 60), min_gt=st.integers(0, 30))
def test_component_values_equal_the_sort_based_table_on_small_frames(seed, h, w, blobs, void, thr, min_pred, min_gt):
    s, lab = _frame(seed, h, w, blobs, void, np.float32)
    _assert_identical(frame_components(s, lab, thr, min_pred, min_gt), _reference(s, lab, thr, min_pred, min_gt))


def test_dense_matches_unique_inverse():
    rng = np.random.default_rng(0)
    for n in (0, 1, 5, 300):
        ids = rng.integers(0, n + 1, size=1000) if n else np.zeros(0, np.int64)
        ids[ids == n // 2] = 0                       # some ids absent
        inv, present = _dense(ids, n)
        u, uinv = np.unique(ids, return_inverse=True)
        np.testing.assert_array_equal(present, u)
        np.testing.assert_array_equal(inv, uinv.reshape(-1))
