"""Which frames the splits nobody can check on real data hold: Fishyscapes Static val, SMIYC
ObstacleTrack test/val and LostAndFound-testNoKnown, against the *published* split rules.

These splits are only ever exercised on trees oodbench writes itself (their test labels are hidden
or the data cannot be redistributed), so a rule copied wrongly into an adapter would pass any test
that compares the adapter with its own constants. Here every constant is typed from the source named
next to it (summarised in ``docs/benchmarks.md`` §1.2, §1.3, §1.5), nothing is
imported from the adapters, and each tree is written with the published file naming by this module
(not by ``oodbench.datasets._trees``). The trees are built so that a wrong rule gives a different
frame list: excluded sequences interleave with kept ones, near-miss ids sit next to excluded ids,
and applying the LostAndFound exclusions in the other order changes the result.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oodbench.datasets import DataLayoutError, get_split

# --- SegmentMeIfYouCan/road-anomaly-benchmark:road_anomaly_benchmark/datasets/tracks.py ------------------
# DatasetLostAndFound: split "LostAndFound-test" asserts 1203 frames; "LostAndFound-testNoKnown" (1043)
# deletes these positions of the fid-sorted test list (frames whose labels are all zero; -> 1186,
# "LostAndFound-testValid"), then drops fids starting with these prefixes (children, bicycles).
LAF_TEST_FRAMES = 1203
LAF_NOKNOWN_FRAMES = 1043
LAF_NOKNOWN_DELETED_POSITIONS = (17, 37, 55, 72, 91, 110, 129, 153, 174, 197, 218, 353, 490, 618, 686, 792, 793)
LAF_NOKNOWN_DROPPED_PREFIXES = ("15_Rechbergstr_Deckenpfronn", "01_Hanns_Klemm_Str_45_000006",
                                "01_Hanns_Klemm_Str_45_000007", "10_Schlossberg_9_000004")
# DatasetObstacleTrack: scene = fid text before the first "_"; "ObstacleTrack-test" = every scene but
# these four (327 frames, labels hidden); "ObstacleTrack-validation" = scene "validation" minus fids
# starting with validation_19 or validation_21 ... validation_29 (30 frames).
OBSTACLE_TEST_SCENES = ("curvy-street", "one-way-street", "gravel", "greyasphalt", "motorway", "paving",
                        "darkasphalt", "darkasphalt2")
OBSTACLE_NON_TEST_SCENES = ("snowstorm1", "snowstorm2", "driveway", "validation")
OBSTACLE_TEST_FRAMES = 327
OBSTACLE_VAL_FRAMES = 30
OBSTACLE_VAL_DROPPED_PREFIXES = ("validation_19", "validation_21", "validation_22", "validation_23",
                                 "validation_24", "validation_25", "validation_26", "validation_27",
                                 "validation_28", "validation_29")
# --- Fishyscapes Static (hermannsblum/bdl-benchmark:bdlb/fishyscapes/fishyscapes_tfds.py, v3.0.0;
# Blum et al., "The Fishyscapes Benchmark", IJCV 2021: 30 validation images) -----------------------------
# fs_val_v3.zip holds DDDD_<csid>_labels.png + DDDD_<csid>_rgb.npz (key "rgb"); the image is the
# Cityscapes *val* frame plus the overlay. Cityscapes val = frankfurt, lindau, munster (Cordts et al. 2016).
FS_STATIC_VAL_FRAMES = 30
CITYSCAPES_VAL_CITIES = ("frankfurt", "lindau", "munster")


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


RGB = np.full((2, 3, 3), 90, np.uint8)
RAW = np.array([[0, 1, 2], [1, 1, 0]], np.uint8)


# --- LostAndFound-testNoKnown -------------------------------------------------------------------------
def _laf_test_ids() -> list[str]:
    """1203 syntactically real LAF test ids (``<NN>_<scene>_<seq:6>_<frame:6>``). Dropped sequences sit
    between kept ones of the same scene, the first ones among the deleted positions 17..129."""
    seqs = [("01_Hanns_Klemm_Str_45", 5, 12), ("01_Hanns_Klemm_Str_45", 6, 30),
            ("01_Hanns_Klemm_Str_45", 7, 30), ("01_Hanns_Klemm_Str_45", 8, 12),
            ("04_Maurener_Weg_8", 0, 60), ("10_Schlossberg_9", 3, 20), ("10_Schlossberg_9", 4, 25),
            ("10_Schlossberg_9", 5, 20), ("15_Rechbergstr_Deckenpfronn", 0, 45),
            ("15_Rechbergstr_Deckenpfronn", 1, 17)]
    ids = [f"{scene}_{seq:06d}_{10 * k:06d}" for scene, seq, n in seqs for k in range(n)]
    ids += [f"13_Elly_Beinhorn_Str_{k // 100:06d}_{k % 100:06d}" for k in range(LAF_TEST_FRAMES - len(ids))]
    return sorted(ids)


def _write_laf(root: Path, ids: list[str]) -> None:
    for fid in ids:
        scene = fid[: -len("_000000_000000")]
        _png(root / "dataset_LostAndFound" / "leftImg8bit" / "test" / scene / f"{fid}_leftImg8bit.png", RGB)
        _png(root / "dataset_LostAndFound" / "gtCoarse" / "test" / scene / f"{fid}_gtCoarse_labelIds.png", RAW)


def test_laf_noknown_is_the_published_subset(tmp_path):
    ids = _laf_test_ids()
    assert len(ids) == LAF_TEST_FRAMES
    valid = [f for i, f in enumerate(ids) if i not in LAF_NOKNOWN_DELETED_POSITIONS]
    expected = [f for f in valid if not f.startswith(LAF_NOKNOWN_DROPPED_PREFIXES)]
    assert len(valid) == 1186 and len(expected) == LAF_NOKNOWN_FRAMES  # the tree reproduces the counts
    # the tree tells the two orders apart: dropping by prefix first shifts every position
    by_prefix = [f for f in ids if not f.startswith(LAF_NOKNOWN_DROPPED_PREFIXES)]
    assert [f for i, f in enumerate(by_prefix) if i not in LAF_NOKNOWN_DELETED_POSITIONS] != expected
    _write_laf(tmp_path, ids)
    got = get_split("smiyc-laf-noknown", tmp_path).frame_ids()   # strict count: 1043
    assert got == expected
    assert ids[17] not in got and ids[793] not in got and ids[794] in got
    assert ids[72] == "01_Hanns_Klemm_Str_45_000008_000000" and ids[72] not in got  # kept sequence, deleted position
    assert "01_Hanns_Klemm_Str_45_000005_000110" in got and "01_Hanns_Klemm_Str_45_000008_000010" in got
    assert "10_Schlossberg_9_000003_000190" in got and "10_Schlossberg_9_000005_000000" in got
    assert not any(f.startswith(("15_", "01_Hanns_Klemm_Str_45_000006", "10_Schlossberg_9_000004")) for f in got)


# --- SMIYC ObstacleTrack --------------------------------------------------------------------------------
def _write_obstacle(root: Path, per_scene: dict[str, int], val: range) -> None:
    base = root / "dataset_ObstacleTrack"
    for scene, n in per_scene.items():
        for k in range(n):
            _png(base / "images" / f"{scene}_obstacle{k}.webp", RGB)
    for n in val:
        _png(base / "images" / f"validation_{n}.webp", RGB)
        _png(base / "labels_masks" / f"validation_{n}_labels_semantic.png", RAW)


def test_obstacle_track_test_and_validation_are_the_published_subsets(tmp_path):
    # every test scene holds frames (41 x 7 + 40 = 327), and so does every excluded scene
    per_scene = {s: 41 for s in OBSTACLE_TEST_SCENES[:-1]} | {OBSTACLE_TEST_SCENES[-1]: 40}
    per_scene |= {s: 3 for s in OBSTACLE_NON_TEST_SCENES if s != "validation"}
    _write_obstacle(tmp_path, per_scene, val=range(1, 41))
    test = get_split("smiyc-obstacle-test", tmp_path).frame_ids()  # strict count: 327
    expected_test = sorted(f"{s}_obstacle{k}" for s in OBSTACLE_TEST_SCENES for k in range(per_scene[s]))
    assert len(expected_test) == OBSTACLE_TEST_FRAMES and test == expected_test
    val = get_split("smiyc-obstacle-val", tmp_path).frame_ids()     # strict count: 30
    expected_val = sorted(f"validation_{n}" for n in range(1, 41)
                          if not f"validation_{n}".startswith(OBSTACLE_VAL_DROPPED_PREFIXES))
    assert len(expected_val) == OBSTACLE_VAL_FRAMES and val == expected_val
    # near misses of the prefixes stay: validation_2 / _20 / _30 are kept, _19 and _21.._29 are not
    assert {"validation_2", "validation_20", "validation_30"} <= set(val)
    assert not {"validation_19", "validation_21", "validation_29"} & set(val)


# --- Fishyscapes Static ---------------------------------------------------------------------------------
def _static_ids(n: int) -> list[str]:
    """``n`` Cityscapes val frame ids; DDDD order (the list order) differs from name order."""
    return [f"{CITYSCAPES_VAL_CITIES[(7 * d) % 3]}_{(29 - d) % 17:06d}_{19 + d:06d}" for d in range(n)]


def _write_static(root: Path, ids: list[str]) -> None:
    for dddd in reversed(range(len(ids))):   # written last-first: order must come from DDDD
        csid = ids[dddd]
        city = csid.split("_")[0]
        _png(root / "cityscapes" / "leftImg8bit" / "val" / city / f"{csid}_leftImg8bit.png", RGB)
        _png(root / "fs_val_v3" / f"{dddd:04d}_{csid}_labels.png", np.array([[0, 1, 255], [0, 0, 1]], np.uint8))
        np.savez(root / "fs_val_v3" / f"{dddd:04d}_{csid}_rgb.npz", rgb=np.zeros((2, 3, 3), np.int16))


def test_fishyscapes_static_val_is_the_published_set(tmp_path):
    ids = _static_ids(FS_STATIC_VAL_FRAMES)
    assert ids != sorted(ids)
    _write_static(tmp_path / "full", ids)
    split = get_split("fishyscapes-static-val", tmp_path / "full")   # strict count: 30
    assert split.frame_ids() == ids
    frame = split.load(ids[7])
    assert frame.meta["dddd"] == "0007"
    assert Path(frame.meta["image_path"]).parent.parent.name == "val"   # a Cityscapes *val* frame
    _write_static(tmp_path / "short", ids[:-1])
    with pytest.raises(DataLayoutError, match=f"{FS_STATIC_VAL_FRAMES}"):
        get_split("fishyscapes-static-val", tmp_path / "short").frame_ids()
