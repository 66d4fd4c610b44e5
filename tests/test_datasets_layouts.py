"""Every split on tiny trees in the official (and preprocessed) layouts, with exact label mappings.

Trees come from :mod:`oodbench.datasets._trees` (a few 4x6 px frames per split; labels hold every
raw value of the encoding), so the official counts (1203 LAF test frames -> 1043 noKnown, 327
ObstacleTrack test frames) and the raw -> 0/1/255 tables are checked exactly, without ../shared.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image

from oodbench.contracts import Frame
from oodbench.datasets import (
    DATASETS,
    DataLayoutError,
    find_available,
    get_split,
    require_available,
    resolve_splits,
)
from oodbench.datasets import _trees as T
from oodbench.datasets.streethazards import StreetHazardsTest

LAF_IDS = ["04_Maurener_Weg_8_000000_000030", "01_Hanns_Klemm_Str_45_000001_000060"]
CS_IDS = ["frankfurt_000000_000294", "lindau_000001_000019"]


def _raw(values):
    return T.raw_label(values)


@pytest.fixture(scope="module")
def laf_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("laf")
    T.lost_and_found_test(root, T.laf_noknown_ids())
    return root


def test_split_attributes():
    expected = {
        # name: (benchmark, protocol, count, persistence, public, component, classes, dtype)
        "fishyscapes-laf-val": ("Fishyscapes L&F", "fishyscapes", 100, None, True, None, None, "float32"),
        "fishyscapes-static-val": ("Fishyscapes Static", "fishyscapes", 30, None, True, None, None, "float32"),
        "road-anomaly": ("RoadAnomaly", "fishyscapes", 60, None, True, None, None, "float32"),
        "smiyc-anomaly-test": ("SMIYC AnomalyTrack", "smiyc", 100, "AnomalyTrack-all", False, "AnomalyTrack", None, "float16"),
        "smiyc-anomaly-val": ("SMIYC AnomalyTrack", "smiyc", 10, "AnomalyTrack-all", True, "AnomalyTrack", None, "float16"),
        "smiyc-laf-noknown": ("SMIYC LostAndFound-noKnown", "smiyc", 1043, "LostAndFound-test", True, "ObstacleTrack", None, "float16"),
        "smiyc-obstacle-test": ("SMIYC ObstacleTrack", "smiyc", 327, "ObstacleTrack-all", False, "ObstacleTrack", None, "float16"),
        "smiyc-obstacle-val": ("SMIYC ObstacleTrack", "smiyc", 30, "ObstacleTrack-all", True, "ObstacleTrack", None, "float16"),
        "streethazards-test": ("StreetHazards", "streethazards", 1500, None, True, None, 12, "float32"),
    }
    assert DATASETS.names() == sorted(expected)
    for name, attrs in expected.items():
        cls = DATASETS.get(name).obj
        got = (cls.benchmark, cls.protocol, cls.expected_count, cls.persistence_name, cls.labels_public,
               cls.component_metrics, cls.num_classes, cls.score_dtype)
        assert got == attrs, name


def test_laf_noknown_official_rules(laf_root):
    split = get_split("smiyc-laf-noknown", laf_root)
    ids = split.frame_ids()
    all_ids = T.laf_noknown_ids()
    kept = [f for i, f in enumerate(all_ids) if i not in {17, 37, 55, 72, 91, 110, 129, 153, 174, 197, 218,
                                                          353, 490, 618, 686, 792, 793}]
    kept = [f for f in kept if f.startswith("20_")]
    assert ids == kept and len(ids) == 1043
    frame = split.load(ids[0])
    # LAF labelIds 0 1 2 37 200 201 1 0 -> 255 0 1 1 1 255 0 255
    np.testing.assert_array_equal(frame.label, _raw((255, 0, 1, 1, 1, 255, 0, 255)))
    assert frame.meta["scene"] == "20_Normal_Str" and split.key == "LostAndFound-test"


def test_laf_noknown_without_the_full_test_list(tmp_path):
    ids = [f for f in T.laf_noknown_ids() if f.startswith(("10_", "20_Normal_Str_000000_00000"))]
    T.lost_and_found_test(tmp_path, ids)  # 37 + 10 frames
    with pytest.raises(DataLayoutError, match="expected 1203 LostAndFound test frames"):
        get_split("smiyc-laf-noknown", tmp_path).frame_ids()
    with pytest.warns(RuntimeWarning, match="positional noKnown exclusions are not applied"):
        assert get_split("smiyc-laf-noknown", tmp_path, check_count=False).frame_ids() == sorted(ids)[-10:]
    # a synthetic benchmark's manifest sets the count: no positional exclusions, no warning
    (tmp_path / "oodbench_manifest.json").write_text(json.dumps(
        {"synthetic": True, "generator": "test", "counts": {"smiyc-laf-noknown": 10}}))
    split = get_split("smiyc-laf-noknown", tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(split) == 10 and split.synthetic and split.expected() == 10


def test_laf_webp_images_and_official_extension_rule(tmp_path):
    ids = [f"20_Normal_Str_000000_{k:06d}" for k in range(3)]
    T.lost_and_found_test(tmp_path, ids, ext="webp")
    split = get_split("smiyc-laf-noknown", tmp_path, check_count=False)
    with pytest.warns(RuntimeWarning):
        frame = split.load(ids[1])
    assert frame.image.shape == (T.H, T.W, 3) and frame.meta["image_path"].endswith("_leftImg8bit.webp")


def test_smiyc_anomaly_track(tmp_path):
    T.anomaly_track(tmp_path, test=[f"cow{k:04d}" for k in range(100)])
    val = get_split("smiyc-anomaly-val", tmp_path)
    frame = val.load("validation0003")
    np.testing.assert_array_equal(frame.label, _raw((0, 1, 255, 0, 1, 255)))  # raw 7 -> void
    assert isinstance(frame, Frame) and frame.image.shape == (T.H, T.W, 3)
    test = get_split("smiyc-anomaly-test", tmp_path)
    assert len(test) == 100 and test.load("cow0042").label is None


def test_smiyc_obstacle_track_scenes(tmp_path):
    # published test scenes (tests/test_split_rules.py types the whole rule; not the adapter's constant)
    counts = {scene: 0 for scene in ("curvy-street", "one-way-street", "gravel", "greyasphalt", "motorway",
                                     "paving", "darkasphalt", "darkasphalt2")}
    counts.update({"curvy-street": 120, "gravel": 107, "motorway": 100, "snowstorm1": 3, "driveway": 2})
    T.obstacle_track(tmp_path, test=counts)
    test = get_split("smiyc-obstacle-test", tmp_path)
    ids = test.frame_ids()
    assert len(ids) == 327 and not any(i.startswith(("snowstorm", "driveway", "validation")) for i in ids)
    assert test.load(ids[0]).label is None and test.key == "ObstacleTrack-all"
    val = get_split("smiyc-obstacle-val", tmp_path)
    assert len(val) == 30 and val.load("validation_40").label.dtype == np.uint8


def test_fishyscapes_static_official_overlay(tmp_path):
    T.fishyscapes_static_official(tmp_path, CS_IDS)
    split = get_split("fishyscapes-static-val", tmp_path, check_count=False)
    assert split.frame_ids() == CS_IDS
    frame = split.load(CS_IDS[1])
    base = np.asarray(Image.open(tmp_path / "cityscapes/leftImg8bit/val/lindau/lindau_000001_000019_leftImg8bit.png"))
    overlay = np.load(tmp_path / "fs_val_v3" / "0001_lindau_000001_000019_rgb.npz")["rgb"]
    np.testing.assert_array_equal(frame.image, np.clip(base.astype(int) + overlay, 0, 255).astype(np.uint8))
    assert (frame.image == 0).any() and (frame.image == 255).any()  # the -300 / +300 offsets clip
    assert frame.meta["dddd"] == "0001" and frame.meta["overlay_path"].endswith("_rgb.npz")
    np.testing.assert_array_equal(frame.label, _raw((0, 1, 255)))


def test_fishyscapes_static_alternative_folder_and_preprocessed(tmp_path):
    T.fishyscapes_static_official(tmp_path / "a", CS_IDS, folder="fishyscapes_static")
    assert get_split("fishyscapes-static-val", tmp_path / "a", check_count=False).frame_ids() == CS_IDS
    T.fishyscapes_preprocessed(tmp_path / "b", "Static", [f"{d:04d}_{c}" for d, c in enumerate(CS_IDS)][::-1])
    split = get_split("fishyscapes-static-val", tmp_path / "b", check_count=False)
    assert split.frame_ids() == CS_IDS and split.load(CS_IDS[0]).meta["dddd"] == "0000"
    T.fishyscapes_preprocessed(tmp_path / "c", "Static", [f"{c}_leftImg8bit" for c in CS_IDS])
    assert get_split("fishyscapes-static-val", tmp_path / "c", check_count=False).frame_ids() == CS_IDS


def test_fishyscapes_laf_pairs_by_dddd_not_listing_order(tmp_path):
    T.fishyscapes_laf_official(tmp_path, LAF_IDS, splits=["test", "train"])
    split = get_split("fishyscapes-laf-val", tmp_path, check_count=False)
    assert split.frame_ids() == LAF_IDS  # DDDD order 0000, 0001 although sorted() would swap them
    frames = list(split)
    assert [f.meta["dddd"] for f in frames] == ["0000", "0001"]
    assert "/leftImg8bit/test/04_Maurener_Weg_8/" in frames[0].meta["image_path"]
    assert "/leftImg8bit/train/01_Hanns_Klemm_Str_45/" in frames[1].meta["image_path"]


def test_road_anomaly_layouts(tmp_path):
    T.road_anomaly_official(tmp_path / "o", ["b_frame", "a_frame"])
    split = get_split("road-anomaly", tmp_path / "o", check_count=False)
    assert split.frame_ids() == ["b_frame", "a_frame"]  # frame_list.json order
    np.testing.assert_array_equal(split.load("a_frame").label, _raw((0, 0, 1)))
    T.road_anomaly_preprocessed(tmp_path / "p", ["b_frame", "a_frame"])
    pre = get_split("road-anomaly", tmp_path / "p", check_count=False)
    assert pre.frame_ids() == ["a_frame", "b_frame"]
    np.testing.assert_array_equal(pre.load("a_frame").label, _raw((0, 1)))
    T.road_anomaly_preprocessed(tmp_path / "o", ["x"])  # both layouts: choose explicitly
    assert get_split("road-anomaly", tmp_path / "o", check_count=False, layout="preprocessed").frame_ids() == ["x"]


def test_layouts_are_declared_by_the_two_layout_splits():
    with_layouts = {n for n in DATASETS.names() if DATASETS.get(n).obj.layouts}
    assert with_layouts == {"fishyscapes-laf-val", "fishyscapes-static-val", "road-anomaly"}
    assert all(DATASETS.get(n).obj.layouts == ("official", "preprocessed") for n in with_layouts)


def test_resolve_splits_passes_layout_only_where_declared(tmp_path):
    T.road_anomaly_official(tmp_path, ["a"])
    T.road_anomaly_preprocessed(tmp_path, ["x", "y"])
    T.streethazards_test(tmp_path, per_town=1)
    with pytest.raises(DataLayoutError, match="ambiguous layout"):
        resolve_splits(["road-anomaly"], tmp_path, check_count=False)[0][0].frame_ids()
    splits, skipped = resolve_splits(["all", "road-anomaly"], tmp_path, check_count=False, layout="preprocessed")
    assert [s.name for s in splits] == ["road-anomaly", "streethazards-test"]  # each split once
    assert splits[0].layout == "preprocessed" and splits[0].frame_ids() == ["x", "y"]
    assert not hasattr(splits[1], "layout")  # a one-layout split gets no layout keyword
    assert "road-anomaly" not in skipped and "fishyscapes-laf-val" in skipped
    assert "smiyc-anomaly-test" not in skipped  # labels hidden: not a candidate for "all"
    assert "smiyc-anomaly-test" in resolve_splits(["all"], tmp_path, check_count=False, labelled_only=False)[1]
    with pytest.raises(DataLayoutError, match="no labelled split found under"):
        resolve_splits(["all"], tmp_path / "road_anomaly")


def test_streethazards_mappings(tmp_path):
    stems = T.streethazards_test(tmp_path)
    split = get_split("streethazards-test", tmp_path, check_count=False)
    assert split.frame_ids() == stems and [split.load(s).meta["town"] for s in stems] == ["t5", "t5", "t6", "t6"]
    frame = split.load(stems[0])
    # raw 1..14 -> anomaly only for 14; DenseHybrid ids with "other" (raw 4) ignored, anomaly 12
    np.testing.assert_array_equal(frame.label, _raw((0,) * 13 + (1,)))
    np.testing.assert_array_equal(frame.semantic, _raw((0, 1, 2, 255, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)))
    mapping = StreetHazardsTest.cityscapes_to_semantic
    assert sorted(mapping) == list(range(19)) and set(mapping.values()) <= set(range(12))
    assert (mapping[0], mapping[1], mapping[11], mapping[12], mapping[13], mapping[15], mapping[10]) == (6, 7, 3, 3, 9, 9, 0)


def test_manifest_counts_and_find_available(tmp_path):
    T.anomaly_track(tmp_path, val=3, test=["cow0000"])
    T.streethazards_test(tmp_path, per_town=1)
    with pytest.raises(DataLayoutError, match="expected 10 frames"):
        get_split("smiyc-anomaly-val", tmp_path).frame_ids()
    (tmp_path / "oodbench_manifest.json").write_text(json.dumps({
        "synthetic": True, "generator": "test",
        "counts": {"smiyc-anomaly-val": 3, "smiyc-anomaly-test": 1, "streethazards-test": 2}}))
    found, missing = require_available(tmp_path)
    assert found == ["smiyc-anomaly-val", "streethazards-test"]  # test splits are not labelled
    assert set(missing) == set(DATASETS.names()) - set(found) - {"smiyc-anomaly-test", "smiyc-obstacle-test"}
    assert find_available(tmp_path, labelled_only=False)[0] == ["smiyc-anomaly-test", *found]
    split = get_split("smiyc-anomaly-val", tmp_path)
    assert split.synthetic and split.expected() == 3 and get_split("road-anomaly", tmp_path).expected() == 60


def test_frames_are_not_cached(tmp_path):
    T.anomaly_track(tmp_path, val=10, test=())
    split = get_split("smiyc-anomaly-val", tmp_path)
    a, b = split.load("validation0001"), split.load("validation0001")
    assert a.image is not b.image and a.label is not b.label
    assert split.frame_ids() is not split.frame_ids()  # callers may mutate their copy
