"""Parity with the official evaluators on the shared benchmark fixtures (to 1e-9).

The fixture tree is regenerated per dataset into a session tmp dir with the project's generator
(``tests/fixtures_gen/make_fixtures.py``, a verbatim copy of ``../shared/fixtures/make_fixtures.py``);
the numbers the official code returned on it are in ``tests/data/fixtures/expected_metrics.json``
(copied from ``../shared/fixtures/expected.json`` with provenance).  Predictions (HDF5 ``value``)
and labels are read straight from the official layouts; the raw -> 0/1/255 label mappings are
applied here (docs/benchmarks.md §1).
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from oodbench.metrics import (
    ExactPixelAccumulator, FishyscapesPixelAccumulator, HendrycksPerImageAccumulator, OpenSetMIoU,
    SmiycComponentAccumulator, SmiycPixelAccumulator,
)

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[0].parent / "shared"
EXPECTED = json.loads((HERE / "data" / "fixtures" / "expected_metrics.json").read_text())["expected"]
TOL = 1e-9
METHODS = ("FixtureGood", "FixtureWeak")


@pytest.fixture(scope="session")
def fixture_root(tmp_path_factory, script):
    """Lazily generates one dataset of the fixture tree at a time (the path has no t5/t6)."""
    mod = script("tests/fixtures_gen/make_fixtures.py")
    root = tmp_path_factory.mktemp("oodfx")
    writer, plan, done = mod.Writer(root), mod.Plan(), set()
    makers = {"AnomalyTrack": mod.make_anomaly_track, "ObstacleTrack": mod.make_obstacle_track,
              "FishyscapesLAF": mod.make_fishyscapes_laf, "RoadAnomaly": mod.make_road_anomaly,
              "StreetHazards": mod.make_streethazards}

    def get(name: str) -> Path:
        if name not in done:
            makers[name](writer, plan)
            done.add(name)
        return root
    return get


def _h5(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f["value"][()]


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def _smiyc_frames(root: Path, track: str, method: str):
    if track == "AnomalyTrack":
        fids = [f"validation{i:04d}" for i in range(10)]
        base, key = root / "dataset_AnomalyTrack", "AnomalyTrack-all"
    else:  # ObstacleTrack-validation: scene "validation" minus the official exclude_prefix list
        excl = {19, 21, 22, 23, 24, 25, 26, 27, 28, 29}
        fids = sorted(f"validation_{i}" for i in range(1, 41) if i not in excl)
        base, key = root / "dataset_ObstacleTrack", "ObstacleTrack-all"
    for fid in fids:
        raw = _png(base / "labels_masks" / f"{fid}_labels_semantic.png")
        lab = np.full(raw.shape, 255, np.uint8)           # SMIYC: 0 -> 0, 1 -> 1, rest -> 255
        lab[raw == 0], lab[raw == 1] = 0, 1
        yield fid, _h5(root / "anomaly_p" / method / key / f"{fid}.hdf5"), lab


def test_generator_copy_matches_shared():
    if not (SHARED / "fixtures" / "make_fixtures.py").exists():
        pytest.skip("../shared is absent (user clone): nothing to compare the copy with")
    ours = (HERE / "fixtures_gen" / "make_fixtures.py").read_text().splitlines()
    theirs = (SHARED / "fixtures" / "make_fixtures.py").read_text().splitlines()
    assert ours[:1] + ours[2:] == theirs


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("track", ["AnomalyTrack", "ObstacleTrack"])
def test_smiyc_pixbinaryclass_and_segeval(fixture_root, track, method):
    root = fixture_root(track)
    exp = EXPECTED[f"{track}-validation"][method]
    pix = SmiycPixelAccumulator()
    frames = list(_smiyc_frames(root, track, method))
    for fid, s, lab in frames:
        pix.update(s, lab, frame_id=fid)
    r = pix.compute()
    names = {"area_PRC": "auprc", "tpr95_fpr": "fpr95", "area_ROC": "auroc", "best_f1": "best_f1",
             "best_f1_threshold": "best_f1_threshold", "tpr95_threshold": "tpr95_threshold",
             "recall50_threshold": "recall50_threshold", "num_curve_points": "num_curve_points"}
    for theirs, ours in names.items():
        assert r[ours] == pytest.approx(exp["PixBinaryClass"][theirs], abs=TOL), theirs
    # pass 2: components with this method's own best-F1 threshold
    comp = SmiycComponentAccumulator(track, threshold=r["best_f1_threshold"])
    for fid, s, lab in frames:
        comp.update(s, lab, frame_id=fid)
    c = comp.compute()
    for theirs, value in exp[f"SegEval-{track}"].items():
        ours = {"sIoU_gt": "siou", "prec_pred": "ppv", "sIoU_pred": "siou_pred"}.get(theirs, theirs)
        assert c[ours] == pytest.approx(value, abs=TOL), theirs


def test_smiyc_shards_merge_to_the_whole(fixture_root):
    root = fixture_root("AnomalyTrack")
    frames = list(_smiyc_frames(root, "AnomalyTrack", "FixtureWeak"))
    shards = [SmiycPixelAccumulator(), SmiycPixelAccumulator()]
    for i, (fid, s, lab) in enumerate(frames):           # interleaved, like DistributedSampler
        shards[i % 2].update(s, lab, frame_id=fid, order=i)
    merged = SmiycPixelAccumulator.merge_states([sh.state_dict() for sh in shards]).compute()
    exp = EXPECTED["AnomalyTrack-validation"]["FixtureWeak"]["PixBinaryClass"]
    assert merged["auprc"] == pytest.approx(exp["area_PRC"], abs=TOL)
    assert merged["fpr95"] == pytest.approx(exp["tpr95_fpr"], abs=TOL)


def _fs_frames(root: Path, method: str):
    files = sorted((root / "fishyscapes_lostandfound").glob("*_labels.png"),
                   key=lambda p: int(p.name[:4]))         # pairing by the DDDD prefix
    for p in files:
        lafid = p.name[5:-len("_labels.png")]
        yield lafid, _h5(root / "anomaly_p" / method / "fishyscapes-laf-val" / f"{lafid}.hdf5"), _png(p)


def _ra_frames(root: Path, method: str):
    base = root / "RoadAnomaly_jpg"
    for name in json.loads((base / "frame_list.json").read_text()):
        stem = Path(name).stem
        raw = _png(base / "frames" / f"{stem}.labels" / "labels_semantic.png")
        lab = (raw == 2).astype(np.uint8)                 # anomaly = 2; no void
        yield stem, _h5(root / "anomaly_p" / method / "road-anomaly" / f"{stem}.hdf5"), lab


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dataset", ["fishyscapes-laf-val", "road-anomaly"])
def test_fishyscapes_and_nearest_recall(fixture_root, dataset, method):
    root = fixture_root("FishyscapesLAF" if dataset.startswith("fish") else "RoadAnomaly")
    frames = list((_fs_frames if dataset.startswith("fish") else _ra_frames)(root, method))
    exp = EXPECTED[dataset][method]
    fs, nr = FishyscapesPixelAccumulator(), ExactPixelAccumulator(fpr_rule="nearest_recall")
    for fid, s, lab in frames:
        fs.update(s, lab, frame_id=fid)
        nr.update(s, lab, frame_id=fid)
    r = fs.compute()
    ref = exp["calculate_metrics_perpixAP"]
    assert r["auprc"] == pytest.approx(ref["AP"], abs=TOL)
    assert r["fpr95"] == pytest.approx(ref["FPR@95%TPR"], abs=TOL)
    assert r["auroc"] == pytest.approx(ref["auroc"], abs=TOL)
    assert r["auprc"] == pytest.approx(exp["sklearn"]["average_precision_score"], abs=TOL)
    assert r["auroc"] == pytest.approx(exp["sklearn"]["roc_auc_score"], abs=TOL)
    assert nr.compute()["fpr95"] == pytest.approx(exp["anom_utils_fpr95_nearest_recall_pooled"], abs=TOL)
    px = exp["pixels"]
    assert r["num_anomaly_pixels"] == px["num_anomaly_pixels"]
    assert r["num_anomaly_pixels"] + r["num_inlier_pixels"] == px.get("num_valid_pixels", px.get("num_pixels"))


_SH_RAW_TO_DH = {1: 0, 2: 1, 3: 2, 5: 3, 6: 4, 7: 5, 8: 6, 9: 7, 10: 8, 11: 9, 12: 10, 13: 11}


def _sh_frames(root: Path, method: str):
    dh = np.full(256, 254, np.uint8)                      # 254: not a StreetHazards value
    for raw_id, dh_id in _SH_RAW_TO_DH.items():
        dh[raw_id] = dh_id
    dh[14], dh[4] = 12, 255                               # anomaly, "other" -> ignore
    base = root / "StreetHazards" / "test"
    for town in ("t5", "t6"):
        for p in sorted((base / "annotations" / "test" / town).glob("*.png")):
            raw = _png(p)
            s = _h5(root / "anomaly_p" / method / "streethazards-test" / f"{p.stem}.hdf5")
            sem = _png(root / "semantic" / method / "streethazards-test" / f"{p.stem}.png")
            yield p.stem, town, s, (raw == 14).astype(np.uint8), dh[raw], sem


@pytest.mark.parametrize("method", METHODS)
def test_streethazards_hendrycks_and_densehybrid(fixture_root, method):
    root = fixture_root("StreetHazards")
    exp = EXPECTED["streethazards-test"][method]
    hp, osr = HendrycksPerImageAccumulator(), OpenSetMIoU(num_known=12)
    for stem, town, s, anomaly, dh_gt, sem in _sh_frames(root, method):
        hp.update(s, anomaly, frame_id=stem)
        osr.update(s, sem, dh_gt, group=town, frame_id=stem)
    r, e = hp.compute(), exp["hendrycks_per_image"]
    assert r["auroc"] == pytest.approx(e["mean_auroc"], abs=TOL)
    assert r["auprc"] == pytest.approx(e["mean_aupr"], abs=TOL)
    assert r["fpr95"] == pytest.approx(e["mean_fpr95"], abs=TOL)
    assert (r["num_frames"], r["num_frames_used"], r["num_frames_skipped"]) == (
        e["num_images"], e["num_images_used"], e["num_skipped"])
    per = hp.per_image()
    for stem, values in e["per_image"].items():
        if values is None:
            assert per[stem] is None
        else:
            assert per[stem] == pytest.approx(tuple(values), abs=TOL)
    o, d = osr.compute(), exp["densehybrid_open_set"]
    assert o["open_miou"] == pytest.approx(d["open_mIoU_image_weighted"], abs=TOL)
    for town, other in (("t6", "t5"), ("t5", "t6")):
        assert o[f"open_miou_{town}"] == pytest.approx(d[f"open_mIoU_town_{town}_threshold_from_{other}"], abs=TOL)
        assert o[f"anomaly_iou_{town}"] == pytest.approx(d[f"anomaly_IoU_town_{town}"], abs=TOL)
        assert o[f"threshold_calibrated_on_{other}"] == d[f"threshold_calibrated_on_{other}"]
        assert o[f"num_images_{town}"] == d[f"num_images_{town}"]
        ious = [o[f"iou_{town}_{c}"] for c in range(13)]
        assert ious == pytest.approx(d[f"per_class_IoU_town_{town}_0to12"], abs=TOL)
    assert o["closed_miou"] == pytest.approx(d["closed_set_mIoU_12"], abs=TOL)
