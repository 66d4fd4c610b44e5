from __future__ import annotations

import h5py
import numpy as np
import pytest

from oodbench.contracts import ContractError
from oodbench.store import FLOAT16_GUARD_KNEE, PredictionError, PredictionStore, float16_guard


def test_roundtrip_float32_and_float16(tmp_path):
    store = PredictionStore(tmp_path, "m")
    rng = np.random.default_rng(0)
    s = rng.normal(size=(4, 6)).astype(np.float32)
    store.write_anomaly("k", "f1", s)
    np.testing.assert_array_equal(store.read_anomaly("k", "f1"), s)
    store.write_anomaly("AnomalyTrack-all", "f2", s, dtype="float16")
    out = store.read_anomaly("AnomalyTrack-all", "f2")
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, s.astype(np.float16))
    with h5py.File(store.anomaly_path("AnomalyTrack-all", "f2")) as fh:  # the official format
        assert list(fh.keys()) == ["value"] and fh["value"].compression == "gzip"
        assert fh["value"].compression_opts == 9


def test_float16_guard_is_monotone_and_never_overflows():
    x = np.array([-3.4e38, -1e6, -65504.0, -8193.0, -8192.0, 0.0, 1.5, 8192.0, 8192.5, 70000.0, 1e20, 3.4e38])
    y, changed = float16_guard(x)
    assert changed
    assert np.all(np.diff(y) > 0)
    assert np.isfinite(y.astype(np.float16)).all()
    small = np.array([-FLOAT16_GUARD_KNEE, 0.25, FLOAT16_GUARD_KNEE])
    same, changed = float16_guard(small)
    assert not changed and same is small


def test_big_scores_are_rescaled_not_clipped(tmp_path):
    store = PredictionStore(tmp_path, "m")
    s = np.array([[1e5, 2e5], [-1.0, 3e5]], dtype=np.float32)
    assert store.write_anomaly("k", "f", s, dtype="float16") is True
    out = store.read_anomaly("k", "f").astype(np.float64)
    assert np.isfinite(out).all()
    assert out[0, 0] < out[0, 1] < out[1, 1] and out[1, 0] == -1.0


def test_nan_scores_are_refused(tmp_path):
    with pytest.raises(ContractError, match="m/k/f: score map contains NaN"):
        PredictionStore(tmp_path, "m").write_anomaly("k", "f", np.array([[np.nan]]))


def test_corrupt_and_missing_files_are_named(tmp_path):
    store = PredictionStore(tmp_path, "m")
    path = store.anomaly_path("k", "bad")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an hdf5 file")
    with pytest.raises(PredictionError, match=r"bad\.hdf5: corrupt or unreadable HDF5"):
        store.read_anomaly("k", "bad")
    with pytest.raises(PredictionError, match=r"missing prediction .*nope\.hdf5"):
        store.read_anomaly("k", "nope")
    with h5py.File(store.anomaly_path("k", "other"), "w") as fh:
        fh["scores"] = np.zeros((2, 2), np.float32)
    with pytest.raises(PredictionError, match="no dataset 'value'"):
        store.read_anomaly("k", "other")
    assert store.missing("k", ["bad", "nope", "other"]) == ["nope"]


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    store = PredictionStore(tmp_path, "m")

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(h5py.File, "create_dataset", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        store.write_anomaly("k", "f", np.zeros((2, 2), np.float32))
    assert list(store.anomaly_dir("k").glob("*")) == []  # nothing, not even the folder


def test_semantic_roundtrip(tmp_path):
    store = PredictionStore(tmp_path, "m")
    c = np.arange(12, dtype=np.uint8).reshape(3, 4)
    store.write_semantic("k", "f", c)
    np.testing.assert_array_equal(store.read_semantic("k", "f"), c)
    assert store.read_semantic("k", "missing") is None
