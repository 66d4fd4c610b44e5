"""Every split on the shared official-layout fixture tree (``shared/fixtures/make_fixtures.py``).

The generator is run once into a temporary folder with ``--write-manifest``, whose per-frame facts
(anomaly/void/obstacle pixel counts, DDDD index, town, frame size) are what the adapters' output is
checked against, pixel count for pixel count. The fixture tree has the official frame counts
except StreetHazards (14 frames, loaded with ``check_count=False``); it has no Fishyscapes Static,
no LAF ``gtCoarse`` and no ObstacleTrack test scenes (those are covered by test_datasets_layouts.py).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oodbench.datasets import DataLayoutError, find_available, get_split

ROOT = Path(__file__).resolve().parents[1]


def _raw(path: str) -> np.ndarray:
    return np.asarray(Image.open(path))


def _values(split) -> set[int]:
    seen: set[int] = set()
    for frame in split:
        assert frame.image.dtype == np.uint8 and frame.image.shape == (*frame.label.shape, 3)
        assert frame.label.dtype == np.uint8
        seen |= set(np.unique(frame.label).tolist())
    return seen


def test_smiyc_anomaly_val(fixture_tree):
    root, facts = fixture_tree
    split = get_split("smiyc-anomaly-val", root)
    assert split.frame_ids() == [f"validation{i:04d}" for i in range(10)]
    for frame in split:
        fact = facts["AnomalyTrack"][frame.frame_id]
        assert int((frame.label == 1).sum()) == fact["anomaly_px"]
        assert int((frame.label == 255).sum()) == fact["void_px"]
        np.testing.assert_array_equal(frame.label, _raw(frame.meta["label_path"]))  # 0/1/255 verbatim
        assert frame.shape == (256, 512)
    assert _values(split) == {0, 1, 255}


def test_smiyc_anomaly_test_hides_labels(fixture_tree):
    root, _ = fixture_tree
    split = get_split("smiyc-anomaly-test", root)
    ids = split.frame_ids()
    assert len(ids) == 100 and not any(i.startswith("validation") for i in ids)
    assert ids[:3] == ["airplane0000", "airplane0001", "bear0000"]
    frame = split.load("cow0013")
    assert frame.label is None and frame.image.shape == (256, 512, 3)
    assert split.key == "AnomalyTrack-all" and split.score_dtype == "float16"


def test_smiyc_obstacle_val_applies_the_official_exclusions(fixture_tree):
    root, facts = fixture_tree
    split = get_split("smiyc-obstacle-val", root)
    wanted = sorted(f for f, fact in facts["ObstacleTrack"].items() if fact["in_validation_split"])
    assert split.frame_ids() == wanted and len(wanted) == 30
    assert "validation_19" not in wanted and "validation_2" in wanted and "validation_20" in wanted
    for frame in split:
        assert int((frame.label == 1).sum()) == facts["ObstacleTrack"][frame.frame_id]["obstacle_px"]
        assert frame.shape == (216, 384)  # decoded from WebP
    assert _values(split) == {0, 1, 255}


def test_smiyc_obstacle_test_is_absent(fixture_tree):
    root, _ = fixture_tree
    with pytest.raises(DataLayoutError) as err:
        get_split("smiyc-obstacle-test", root).frame_ids()
    assert str(err.value) == f"smiyc-obstacle-test: no frames found under {root / 'dataset_ObstacleTrack' / 'images'}"


@pytest.mark.parametrize("layout", ["official", "preprocessed"])
def test_fishyscapes_laf_both_layouts(fixture_tree, layout):
    root, facts = fixture_tree
    fs = facts["FishyscapesLAF"]
    split = get_split("fishyscapes-laf-val", root, layout=layout)
    ids = split.frame_ids()
    assert len(ids) == 100 and set(ids) == set(fs)
    if layout == "official":  # ordered by DDDD, which is not lafid order
        assert ids == sorted(fs, key=lambda f: fs[f]["dddd"]) and ids != sorted(ids)
    for frame in split:
        fact = fs[frame.frame_id]
        assert int((frame.label == 1).sum()) == fact["anomaly_px"]
        if layout == "official":
            assert frame.meta["dddd"] == fact["dddd"]
            assert f"/leftImg8bit/{fact['laf_split']}/" in frame.meta["image_path"]
    empty = next(f for f, fact in fs.items() if fact["dddd"] == "0079")
    assert fs[empty]["anomaly_px"] == 0 and (layout != "official" or ids[79] == empty)
    assert _values(split) == {0, 1, 255}


def test_fishyscapes_layouts_agree_frame_by_frame(fixture_tree):
    root, _ = fixture_tree
    official = get_split("fishyscapes-laf-val", root, layout="official")
    pre = get_split("fishyscapes-laf-val", root, layout="preprocessed")
    for fid in official.frame_ids()[:20]:
        a, b = official.load(fid), pre.load(fid)
        np.testing.assert_array_equal(a.label, b.label)
        np.testing.assert_array_equal(a.image, b.image)


def test_fishyscapes_fixture_root_is_ambiguous(fixture_tree):
    root, _ = fixture_tree
    with pytest.raises(DataLayoutError) as err:
        get_split("fishyscapes-laf-val", root).frame_ids()
    assert str(err.value) == (
        f"fishyscapes-laf-val: ambiguous layout under {root}: both the official layout "
        f"({root / 'fishyscapes_lostandfound'}) and the preprocessed layout ({root / 'fishyscapes' / 'LostAndFound'}) "
        "are present; pass layout='official' or layout='preprocessed'"
    )


def test_road_anomaly(fixture_tree):
    root, facts = fixture_tree
    split = get_split("road-anomaly", root)
    ids = split.frame_ids()
    listed = json.loads((root / "RoadAnomaly_jpg" / "frame_list.json").read_text())
    assert ids == [Path(n).stem for n in listed] and len(ids) == 60
    for frame in split:
        fact = facts["RoadAnomaly"][frame.frame_id]
        assert list(frame.shape) == fact["shape"]
        assert int(frame.label.sum()) == fact["anomaly_px"]
        np.testing.assert_array_equal(frame.label, (_raw(frame.meta["label_path"]) == 2).astype(np.uint8))
    assert _values(split) == {0, 1}  # no void


def test_streethazards(fixture_tree):
    root, facts = fixture_tree
    with pytest.raises(DataLayoutError, match="expected 1500 frames"):
        get_split("streethazards-test", root).frame_ids()
    split = get_split("streethazards-test", root, check_count=False)
    sh = facts["StreetHazards"]
    assert split.frame_ids() == sorted(sh, key=lambda s: (sh[s]["town"], s)) and len(split) == 14
    for frame in split:
        fact = sh[frame.frame_id]
        raw = _raw(frame.meta["label_path"])
        assert frame.meta["town"] == fact["town"]
        assert int(frame.label.sum()) == fact["anomaly_px"]
        assert int((frame.semantic == 255).sum()) == fact["other_px"]
        assert int((frame.semantic == 12).sum()) == fact["anomaly_px"]
        np.testing.assert_array_equal(frame.label, (raw == 14).astype(np.uint8))
        assert set(np.unique(frame.semantic).tolist()) <= set(range(13)) | {255}
    assert sh["0009"]["anomaly_px"] == 0 and _values(split) == {0, 1}


def test_find_available_on_the_fixture_tree(fixture_tree):
    root, _ = fixture_tree
    found, missing = find_available(root)
    assert found == ["road-anomaly", "smiyc-anomaly-val", "smiyc-obstacle-val"]
    assert sorted(missing) == ["fishyscapes-laf-val", "fishyscapes-static-val", "smiyc-laf-noknown",
                               "streethazards-test"]
    assert "ambiguous layout" in missing["fishyscapes-laf-val"]
    with pytest.warns(RuntimeWarning, match="the positional noKnown exclusions are not applied"):
        found, missing = find_available(root, check_count=False)
    assert "streethazards-test" in found
    assert missing["smiyc-laf-noknown"].startswith("smiyc-laf-noknown: missing label ")
