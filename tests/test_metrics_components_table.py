"""SegEval's per-frame contingency table is built without sorting (``components._contingency``:
one bincount of the raw (GT id, predicted id) pairs, or of compacted ids for frames with very many
components) and float16 thresholding compares bit patterns (``components._above``); the component
values must stay *exactly* those of the sort-based construction (``np.unique(...,
return_inverse=True)``) they replaced, which is kept below as the reference."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from oodbench.metrics import components
from oodbench.metrics.components import COMPONENT_CONFIGS, TAUS, _STRUCT, _threshold_in_dtype, frame_components

THRESHOLDS = (-0.5, -0.0, 0.0, 0.8, 1.7, 3.0)


@pytest.fixture(params=["dense", "compacted"])
def table_path(request, monkeypatch):
    """Run each test through both ways of building the table."""
    if request.param == "compacted":
        monkeypatch.setattr(components, "_DENSE_TABLE_CELLS", 0)
    return request.param


def _reference_table(scores, labels, threshold, min_pred, min_gt):
    """The previous table construction (np.unique-based), unchanged: (table, GT ids, predicted ids)."""
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
    return table, gu, pu


def _reference(scores, labels, threshold, min_pred, min_gt):
    """The previous frame_components, unchanged."""
    table, gu, pu = _reference_table(scores, labels, threshold, min_pred, min_gt)
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
def test_component_values_equal_the_sort_based_table(seed, config, table_path):
    min_pred, min_gt = COMPONENT_CONFIGS[config]
    dtype = np.float16 if seed % 2 else np.float32
    s, lab = _frame(seed, 120 + 7 * seed, 200, blobs=1 + seed % 9, void=(seed % 4) * 0.03, dtype=dtype)
    for thr in THRESHOLDS:
        _assert_identical(frame_components(s, lab, thr, min_pred, min_gt), _reference(s, lab, thr, min_pred, min_gt))


@pytest.mark.parametrize("compacted", [False, True])
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(1, 48), w=st.integers(1, 48), blobs=st.integers(0, 12),
       void=st.sampled_from([0.0, 0.05, 0.5, 1.0]), thr=st.floats(-1.0, 4.0) | st.sampled_from([0.0, -0.0]),
       min_pred=st.integers(0, 60), min_gt=st.integers(0, 30), f16=st.booleans())
def test_component_values_equal_the_sort_based_table_on_small_frames(compacted, seed, h, w, blobs, void, thr,
                                                                    min_pred, min_gt, f16):
    s, lab = _frame(seed, h, w, blobs, void, np.float16 if f16 else np.float32)
    cells = 0 if compacted else components._DENSE_TABLE_CELLS
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(components, "_DENSE_TABLE_CELLS", cells)
        got = frame_components(s, lab, thr, min_pred, min_gt)
    _assert_identical(got, _reference(s, lab, thr, min_pred, min_gt))


@pytest.mark.parametrize("seed", range(8))
def test_contingency_table_is_the_unique_table(seed, table_path):
    s, lab = _frame(seed, 90, 130, blobs=2 + seed, void=0.02 * (seed % 3), dtype=np.float32)
    for thr in THRESHOLDS:
        valid = lab != 255
        gt_ids, n_gt = ndimage.label(lab == 1, _STRUCT)
        pred_ids, n_pred = ndimage.label((s > thr) & valid, _STRUCT)
        got = components._contingency(gt_ids, n_gt, pred_ids, n_pred, int((~valid).sum()), 50, 10)
        for g, w in zip(got, _reference_table(s, lab, thr, 50, 10)):
            np.testing.assert_array_equal(g, w)


def test_float16_threshold_by_bit_pattern_is_the_float_compare():
    every = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    finite = every[np.isfinite(every)]
    for t in np.concatenate([finite[::97], np.float16([0.0, -0.0, 65504, -65504, 6e-8, -6e-8])]):
        np.testing.assert_array_equal(components._above(finite, t), finite > t, err_msg=repr(t))
