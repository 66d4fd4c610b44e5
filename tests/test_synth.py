"""The synthetic benchmark generator: determinism (same seed -> same bytes), idempotent atomic
publication, the official layouts and encodings, and the world's rule that anomalies never occur
in the training data."""
from __future__ import annotations

import argparse
import hashlib
import json

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from oodbench.datasets.synth import SynthExistsError, TRAIN_IDS_PRESENT, generate, read_manifest
from oodbench.datasets.synth.command import add_synth_parser
from oodbench.datasets.cityscapes import label_id_to_train_id_lut
from oodbench.datasets.synth.world import CS_LABEL_ID_LUT, WORLD_CLASSES

SMALL = dict(size=(64, 128), n_train=4, n_val=4, n_coco=13, n_per_split=2)


def _hashes(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _png(path):
    return np.asarray(Image.open(path))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("small") / "a", seed=3, **SMALL)


def test_same_seed_same_bytes_other_seed_other_bytes(small, tmp_path):
    again = generate(tmp_path / "b", seed=3, **SMALL)
    assert _hashes(small) == _hashes(again)
    other = _hashes(generate(tmp_path / "c", seed=4, **SMALL))
    ref = _hashes(small)
    same_names = [k for k in ref if not k.startswith("fs_val_v3/")]  # FS Static draws its val frames
    assert set(same_names) <= other.keys() and len(other) == len(ref)  # same layout ...
    images = [k for k in same_names if k.endswith((".png", ".jpg", ".webp"))]
    assert sum(ref[k] != other[k] for k in images) > 0.9 * len(images)  # ... other pixels


def test_generate_is_idempotent_and_guards_existing_folders(small, tmp_path):
    manifest = small / "oodbench_manifest.json"
    stamp = manifest.stat().st_mtime_ns
    assert generate(small, seed=3, **SMALL) == small
    assert manifest.stat().st_mtime_ns == stamp  # reused, not rewritten
    with pytest.raises(SynthExistsError, match="force"):
        generate(small, seed=5, **SMALL)
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")
    with pytest.raises(SynthExistsError, match="not a synthetic"):
        generate(user, seed=0, force=True, **SMALL)
    assert (user / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no staging folders left behind


def test_force_replaces_a_synthetic_tree_atomically(tmp_path):
    out = generate(tmp_path / "d", seed=1, **SMALL)
    generate(out, seed=2, force=True, **SMALL)
    assert read_manifest(out)["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_cli_handler(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_synth_parser(parser.add_subparsers())
    args = parser.parse_args(["synth", "--out", str(tmp_path / "s"), "--seed", "7", "--size", "64x128",
                              "--official-sizes", "--frames", "smiyc-obstacle-val=3"])
    assert args.size == (64, 128)
    assert args.func(args) == 0
    manifest = read_manifest(tmp_path / "s")
    assert manifest["generator"].endswith("seed=7")
    assert manifest["params"]["split_sizes"] == {"smiyc-anomaly-val": 10, "smiyc-obstacle-val": 3,
                                                 "fishyscapes-static-val": 30, "streethazards-test": 4}
    assert manifest["params"]["n_val"] == 30  # FS Static pastes onto 30 val frames
    assert "synthetic benchmark ready" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parser.parse_args(["synth", "--out", "x", "--size", "big"])
    with pytest.raises(SystemExit):
        parser.parse_args(["synth", "--out", "x", "--frames", "road-anomaly=3"])


def test_obstacle_validation_frames_are_numbered_and_kept_as_in_the_release(tmp_path):
    from oodbench.datasets import get_split
    from oodbench.datasets.synth.benchmarks import obstacle_val_numbers

    # the official rule drops validation_19 and validation_21..29, so 30 frames are 1..18, 20, 30..40
    assert obstacle_val_numbers(30) == list(range(1, 19)) + [20] + list(range(30, 41))
    few = generate(tmp_path / "few", seed=3, **SMALL)
    many = generate(tmp_path / "many", seed=3, split_sizes={"smiyc-obstacle-val": 21, "smiyc-anomaly-val": 3,
                                                             "fishyscapes-static-val": 4}, **SMALL)
    counts = read_manifest(many)["counts"]
    assert (counts["smiyc-obstacle-val"], counts["smiyc-anomaly-val"], counts["fishyscapes-static-val"]) == (21, 3, 4)
    ids = get_split("smiyc-obstacle-val", many).frame_ids()
    assert sorted(ids) == sorted(f"validation_{n}" for n in obstacle_val_numbers(21))
    # frames are keyed by their id: more frames leave the others byte-identical (FS Static draws
    # its val frames from a permutation, so only the SMIYC tracks are compared)
    a, b = _hashes(few), _hashes(many)
    shared = [k for k in a if k.startswith(("dataset_ObstacleTrack/", "dataset_AnomalyTrack/"))]
    assert len(shared) < len([k for k in b if k.startswith(("dataset_ObstacleTrack/", "dataset_AnomalyTrack/"))])
    assert all(a[k] == b[k] for k in shared)


def test_split_sizes_are_validated(tmp_path):
    from oodbench.datasets.synth import OFFICIAL_VALIDATION_SIZES
    from oodbench.datasets.synth.generate import resolve_split_sizes

    assert resolve_split_sizes(8, OFFICIAL_VALIDATION_SIZES) == {
        "smiyc-anomaly-val": 10, "smiyc-obstacle-val": 30, "fishyscapes-static-val": 30, "streethazards-test": 4}
    with pytest.raises(ValueError, match="'road-anomaly' has no size parameter"):
        generate(tmp_path / "x", seed=3, split_sizes={"road-anomaly": 3}, **SMALL)
    with pytest.raises(ValueError, match=r"split_sizes\['smiyc-obstacle-val'\] must be an integer >= 1, got 0"):
        generate(tmp_path / "x", seed=3, split_sizes={"smiyc-obstacle-val": 0}, **SMALL)
    with pytest.raises(ValueError, match=r"n_val \(4\) must be >= the fishyscapes-static-val frame count \(5\)"):
        generate(tmp_path / "x", seed=3, split_sizes={"fishyscapes-static-val": 5}, **SMALL)
    assert not (tmp_path / "x").exists()


def test_manifest_contract(synth_root):
    m = json.loads((synth_root / "oodbench_manifest.json").read_text())
    assert m["synthetic"] is True and m["seed"] == 0 and m["generator"].startswith("oodbench.synth ")
    assert set(m["counts"]) == {
        "fishyscapes-laf-val", "fishyscapes-static-val", "smiyc-anomaly-val", "smiyc-anomaly-test",
        "smiyc-obstacle-val", "smiyc-obstacle-test", "smiyc-laf-noknown", "road-anomaly", "streethazards-test"}
    assert all(6 <= n <= 12 for n in m["counts"].values())
    assert m["files"] == sum(1 for p in synth_root.rglob("*") if p.is_file() and "ood_seg" not in str(p))


def test_counts_match_the_files_under_the_official_rules(synth_root):
    """Count frames with the official layout rules, independently of the adapters."""
    r, c = synth_root, read_manifest(synth_root)["counts"]
    at = sorted(p.stem for p in (r / "dataset_AnomalyTrack/images").glob("*.jpg"))
    assert len([f for f in at if f.startswith("validation")]) == c["smiyc-anomaly-val"]
    assert len([f for f in at if not f.startswith("validation")]) == c["smiyc-anomaly-test"]
    assert all((r / f"dataset_AnomalyTrack/labels_masks/{f}_labels_semantic.png").is_file() == f.startswith("validation")
               for f in at)
    ot = [p.stem for p in (r / "dataset_ObstacleTrack/images").glob("*.webp")]
    excl = ("validation_19",) + tuple(f"validation_2{i}" for i in range(1, 10))
    val = [f for f in ot if f.split("_")[0] == "validation" and not f.startswith(excl)]
    assert len(val) == c["smiyc-obstacle-val"] and len(val) < len([f for f in ot if f.startswith("validation")])
    test = [f for f in ot if f.split("_")[0] not in ("validation", "snowstorm1", "snowstorm2", "driveway")]
    assert len(test) == c["smiyc-obstacle-test"] and not any(
        (r / f"dataset_ObstacleTrack/labels_masks/{f}_labels_semantic.png").exists() for f in test)
    laf_test = sorted(p.name[:-len("_leftImg8bit.png")] for p in (r / "dataset_LostAndFound/leftImg8bit/test").glob("*/*.png"))
    assert len(laf_test) < 18  # the official positional exclusions (index 17, ...) cannot apply
    drop = ("15_Rechbergstr_Deckenpfronn", "01_Hanns_Klemm_Str_45_000006", "01_Hanns_Klemm_Str_45_000007",
            "10_Schlossberg_9_000004")
    assert len([f for f in laf_test if not f.startswith(drop)]) == c["smiyc-laf-noknown"] < len(laf_test)
    fs = sorted((r / "fishyscapes_lostandfound").glob("*_labels.png"))
    assert len(fs) == c["fishyscapes-laf-val"]
    fs_ids = [p.name[5:-len("_labels.png")] for p in fs]
    assert fs_ids != sorted(fs_ids)  # DDDD order is not lafid order: adapters must pair by name
    assert all(list((r / "dataset_LostAndFound/leftImg8bit").glob(f"*/*/{f}_leftImg8bit.png")) for f in fs_ids)
    assert len(list((r / "fs_val_v3").glob("*_labels.png"))) == len(list((r / "fs_val_v3").glob("*_rgb.npz"))) \
        == c["fishyscapes-static-val"]
    ra = json.loads((r / "RoadAnomaly_jpg/frame_list.json").read_text())
    assert len(ra) == c["road-anomaly"] and all((r / "RoadAnomaly_jpg/frames" / n).is_file() for n in ra)
    sh = [p.stem for p in (r / "StreetHazards/test/images/test").glob("t[56]/*.png")]
    assert len(sh) == len(set(sh)) == c["streethazards-test"]


def test_label_encodings(synth_root):
    r = synth_root
    for p in (r / "dataset_AnomalyTrack/labels_masks").glob("*_labels_semantic.png"):
        lab = _png(p)
        assert set(np.unique(lab).tolist()) <= {0, 1, 255} and (lab == 1).any(), p
    for p in (r / "dataset_ObstacleTrack/labels_masks").glob("*_labels_semantic.png"):
        lab = _png(p)
        assert set(np.unique(lab).tolist()) == {0, 1, 255}, p  # road, obstacle, off-road void
    for p in (r / "dataset_LostAndFound/gtCoarse").glob("*/*/*_gtCoarse_labelIds.png"):
        lab = _png(p)
        assert lab.min() == 0 and (lab == 1).any() and lab.max() >= 2 and lab.max() <= 200, p
    for p in (r / "fishyscapes_lostandfound").glob("*_labels.png"):
        laf = next((r / "dataset_LostAndFound/gtCoarse").glob(f"*/*/{p.name[5:-11]}_gtCoarse_labelIds.png"))
        raw, fs = _png(laf), _png(p)
        np.testing.assert_array_equal(fs, np.where(raw == 0, 255, np.where(raw == 1, 0, 1)))
    for p in (r / "RoadAnomaly_jpg/frames").glob("*.labels/labels_semantic.png"):
        lab = _png(p)
        assert set(np.unique(lab).tolist()) == {0, 1, 2}, p
    sizes = {_png(p).shape for p in (r / "RoadAnomaly_jpg/frames").glob("*.labels/labels_semantic.png")}
    assert len(sizes) == 2  # mixed frame sizes, as in the real release
    empty = 0
    for p in (r / "StreetHazards/test/annotations/test").glob("*/*.png"):
        lab = _png(p)
        assert lab.min() >= 1 and lab.max() <= 14 and (lab == 4).any(), p  # "other" present
        empty += not (lab == 14).any()
    assert empty == 1


def test_fishyscapes_static_overlay_rebuilds_the_pasted_image(synth_root):
    r = synth_root
    for lab_path in sorted((r / "fs_val_v3").glob("*_labels.png")):
        csid = lab_path.name[5:-len("_labels.png")]
        base = _png(next((r / "cityscapes/leftImg8bit/val").glob(f"*/{csid}_leftImg8bit.png"))).astype(np.int16)
        with np.load(lab_path.with_name(lab_path.name.replace("_labels.png", "_rgb.npz"))) as z:
            assert list(z.keys()) == ["rgb"] and z["rgb"].dtype == np.int16
            overlay = z["rgb"]
        image = np.clip(base + overlay, 0, 255)
        label = _png(lab_path)
        changed = (overlay != 0).any(axis=2)
        anomaly = label == 1
        assert anomaly.any() and changed[anomaly].mean() > 0.9
        assert (image >= 0).all() and not changed[~np.isin(label, (1,))].all()


def test_training_data_never_contains_the_anomaly_class(synth_root):
    """Label id 0 ('unlabeled') is what the anomaly class maps to; no training label may hold it."""
    assert CS_LABEL_ID_LUT[WORLD_CLASSES[-1].id] == 0 and 0 not in CS_LABEL_ID_LUT[:len(WORLD_CLASSES) - 1]
    lut = label_id_to_train_id_lut()
    seen: set[int] = set()
    for p in sorted((synth_root / "cityscapes/gtFine").glob("*/*/*_gtFine_labelIds.png")):
        ids = _png(p)
        assert not (ids == 0).any(), p
        train = _png(p.with_name(p.name.replace("_labelIds", "_labelTrainIds")))
        np.testing.assert_array_equal(train, lut[ids])
        seen |= set(np.unique(train).tolist())
    assert seen == set(TRAIN_IDS_PRESENT) | {255}


@pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")
def test_coco_source_is_valid_and_exercises_the_filter(synth_root):
    coco = COCO(str(synth_root / "coco/annotations/instances_train2017.json"))
    names = {c["name"] for c in coco.loadCats(coco.getCatIds())}
    assert {"person", "car", "stop sign", "train"} <= names
    stats = read_manifest(synth_root)["train"]["coco"]
    assert stats["excluded_category"] > 0 and stats["too_small"] > 0 and stats["kept"] >= 20
    crowd = coco.loadAnns(coco.getAnnIds(iscrowd=True))
    assert crowd and all(isinstance(a["segmentation"], dict) for a in crowd)
    for img in coco.loadImgs(coco.getImgIds()):
        path = synth_root / "coco/train2017" / img["file_name"]
        with Image.open(path) as im:
            assert im.size == (img["width"], img["height"])
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img["id"])):
            m = coco.annToMask(ann)
            assert m.sum() == pytest.approx(ann["area"]) and m.any()


@pytest.mark.slow
def test_full_default_generation_is_deterministic(tmp_path):
    # its speed (target < 60 s on 2 cores) is tests/benchmarks/test_bench_synth.py, not a timed assert
    a = generate(tmp_path / "a", seed=0)
    b = generate(tmp_path / "b", seed=0)
    assert _hashes(a) == _hashes(b)
