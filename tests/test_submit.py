"""``oodbench submit smiyc``: every packed frame passes the checks evaluation applies when it reads
the file (the store's reader), the archive holds exactly one file per test frame, and prediction
files that belong to no submitted frame are listed and left out."""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest

from oodbench.store import PredictionError, PredictionStore
from oodbench.submit import SubmissionError, build_smiyc_submission


@dataclass
class _Split:
    """The part of a SMIYC split the submission builder uses (image sizes without image files)."""

    name: str
    key: str
    sizes: dict[str, tuple[int, int]]

    @property
    def persistence_name(self) -> str:
        return self.key

    def frame_ids(self) -> list[str]:
        return list(self.sizes)

    def load(self, fid: str) -> SimpleNamespace:
        return SimpleNamespace(shape=self.sizes[fid])

    root = Path("/data")
    images: dict[str, Path] | None = None

    def input_files(self, fid: str) -> tuple[Path, ...]:
        return () if self.images is None else (self.images[fid],)


ANOMALY = _Split("smiyc-anomaly-test", "AnomalyTrack-all", {"a0": (4, 6), "a1": (5, 6)})
OBSTACLE = _Split("smiyc-obstacle-test", "ObstacleTrack-all", {"o0": (3, 7), "o1": (3, 7), "o2": (3, 7)})
SPLITS = [ANOMALY, OBSTACLE]


@pytest.fixture()
def store(tmp_path) -> PredictionStore:
    """A complete, valid float16 prediction tree for both splits (as ``oodbench run`` writes it)."""
    s = PredictionStore(tmp_path / "out", "m")
    rng = np.random.default_rng(0)
    for split in SPLITS:
        for fid, size in split.sizes.items():
            s.write_anomaly(split.key, fid, rng.normal(size=size), dtype="float16")
    return s


def _build(store: PredictionStore, tmp_path, log=None):
    lines: list[str] = []
    counts = build_smiyc_submission(store.root, store.method, tmp_path / "sub.zip", SPLITS, progress=False,
                                    log=log or lines.append)
    return counts, lines


def test_archive_holds_exactly_one_file_per_test_frame(store, tmp_path):
    # a validation frame shares the AnomalyTrack-all folder; a stray file matches no frame at all
    store.write_anomaly("AnomalyTrack-all", "val0", np.zeros((2, 2)), dtype="float16")
    store.write_anomaly("ObstacleTrack-all", "renamed_frame", np.zeros((3, 7)), dtype="float16")
    store.write_run_manifest("AnomalyTrack-all", {"method": "m"})
    (store.anomaly_dir("ObstacleTrack-all") / "notes.txt").write_text("x")
    counts, lines = _build(store, tmp_path)
    assert counts == {"AnomalyTrack-all": 2, "ObstacleTrack-all": 3}
    with zipfile.ZipFile(tmp_path / "sub.zip") as zf:
        names = zf.namelist()
        expected = [f"anomaly_p/m/{s.key}/{fid}.hdf5" for s in SPLITS for fid in s.frame_ids()]
        assert sorted(names) == sorted(expected) and len(names) == len(set(names))
        for s in SPLITS:
            for fid in s.frame_ids():
                assert zf.read(f"anomaly_p/m/{s.key}/{fid}.hdf5") == store.anomaly_path(s.key, fid).read_bytes()
    stray = [line for line in lines if "left out" in line]
    assert len(stray) == 2
    assert "val0.hdf5" in stray[0] and str(store.anomaly_dir("AnomalyTrack-all")) in stray[0]
    assert "renamed_frame.hdf5" in stray[1] and "notes.txt" not in stray[1]


def _write_raw(path, **datasets) -> None:
    with h5py.File(path, "w") as fh:
        for name, value in datasets.items():
            fh.create_dataset(name, data=value)


BAD = {
    "nan": (lambda p: _write_raw(p, value=np.full((4, 6), np.nan, np.float16)), "NaN"),
    "inf": (lambda p: _write_raw(p, value=np.where(np.eye(4, 6) > 0, np.inf, 0).astype(np.float16)), "inf"),
    "float32": (lambda p: _write_raw(p, value=np.zeros((4, 6), np.float32)), "float32"),
    "shape": (lambda p: _write_raw(p, value=np.zeros((6, 4), np.float16)), r"\(6, 4\)"),
    "no_value": (lambda p: _write_raw(p, scores=np.zeros((4, 6), np.float16)), "no dataset 'value'"),
    "unreadable": (lambda p: p.write_bytes(b"not an hdf5 file"), "unreadable"),
    "integers": (lambda p: _write_raw(p, value=np.zeros((4, 6), np.uint8)), "uint8"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_frame_evaluation_would_refuse_is_not_packed(store, tmp_path, case):
    write, needle = BAD[case]
    path = store.anomaly_path("AnomalyTrack-all", "a0")
    write(path)
    with pytest.raises(SubmissionError, match=needle) as err:
        _build(store, tmp_path)
    assert str(path) in str(err.value) and "1 problem(s)" in str(err.value)
    assert not (tmp_path / "sub.zip").exists()
    # the same words the store's reader uses when evaluation reads this file
    with pytest.raises(PredictionError) as read:
        store.read_anomaly("AnomalyTrack-all", "a0", shape=(4, 6), dtype=np.float16)
    assert str(read.value) in str(err.value)


def test_every_problem_is_listed_before_refusing(store, tmp_path):
    _write_raw(store.anomaly_path("AnomalyTrack-all", "a1"), value=np.full((5, 6), np.inf, np.float16))
    store.anomaly_path("ObstacleTrack-all", "o2").unlink()
    with pytest.raises(SubmissionError, match="2 problem") as err:
        _build(store, tmp_path)
    assert "a1.hdf5" in str(err.value) and "1 of 3 frames missing" in str(err.value) and "o2" in str(err.value)


def test_a_folder_of_two_configurations_is_not_packed(tmp_path):
    # an interrupted `run --overwrite` with another checkpoint leaves frames of both; evaluate refuses
    # such a folder, and so must the archive the organisers score as one method
    s = PredictionStore(tmp_path / "out", "m")
    old, new = "a" * 64, "b" * 64
    s.write_anomaly("AnomalyTrack-all", "a0", np.zeros((4, 6)), dtype="float16", config=new)
    s.write_anomaly("AnomalyTrack-all", "a1", np.zeros((5, 6)), dtype="float16", config=old)
    s.write_run_manifest("AnomalyTrack-all", {"method": "m", "config_digest": new})
    with pytest.raises(SubmissionError, match="more than one configuration") as err:
        build_smiyc_submission(s.root, "m", tmp_path / "sub.zip", [ANOMALY], progress=False, log=print)
    assert "smiyc-anomaly-test" in str(err.value) and "a0" in str(err.value) and "a1" in str(err.value)
    assert not (tmp_path / "sub.zip").exists()
    # one configuration throughout: packed
    s.write_anomaly("AnomalyTrack-all", "a1", np.zeros((5, 6)), dtype="float16", config=new)
    assert build_smiyc_submission(s.root, "m", tmp_path / "sub.zip", [ANOMALY], progress=False,
                                  log=print) == {"AnomalyTrack-all": 2}


def test_a_run_on_untrained_weights_is_submitted_only_when_asked(store, tmp_path):
    store.write_run_manifest("ObstacleTrack-all", {"method": "m", "untrained": True})
    with pytest.raises(SubmissionError, match="untrained weights") as err:
        _build(store, tmp_path)
    assert "smiyc-obstacle-test" in str(err.value) and "--allow-untrained" in str(err.value)
    assert "1 problem(s)" in str(err.value) and not (tmp_path / "sub.zip").exists()
    counts = build_smiyc_submission(store.root, "m", tmp_path / "sub.zip", SPLITS, progress=False, log=print,
                                    allow_untrained=True)
    assert counts == {"AnomalyTrack-all": 2, "ObstacleTrack-all": 3}


def test_predictions_of_images_that_changed_since_are_not_packed(tmp_path):
    from oodbench.datasets import input_digest

    images = {}
    for fid in ANOMALY.sizes:
        images[fid] = tmp_path / f"{fid}.jpg"
        images[fid].write_bytes(fid.encode())
    split = _Split(ANOMALY.name, ANOMALY.key, ANOMALY.sizes)
    split.images = images
    s = PredictionStore(tmp_path / "out", "m")
    for fid, size in split.sizes.items():
        s.write_anomaly(split.key, fid, np.zeros(size), dtype="float16", input_digest=input_digest(split, fid))
    assert build_smiyc_submission(s.root, "m", tmp_path / "ok.zip", [split], progress=False, log=print)
    images["a1"].write_bytes(b"another version of the image")
    with pytest.raises(SubmissionError, match="1 frames were predicted from other image files") as err:
        build_smiyc_submission(s.root, "m", tmp_path / "sub.zip", [split], progress=False, log=print)
    assert "a1" in str(err.value) and "a0" not in str(err.value).split("e.g.")[1]
    assert not (tmp_path / "sub.zip").exists()
