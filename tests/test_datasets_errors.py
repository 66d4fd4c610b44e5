"""Each bad input of tracker issue #4 item 4 gives its exact error, naming the file or folder.

Wrong frame count, missing label or image, image/label size mismatch, unexpected label values,
unreadable image (incl. WebP without Pillow support), ambiguous layout -- plus malformed
manifests, unknown scenes/towns, duplicate ids and misplaced files. Nothing is silently skipped.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from oodbench.contracts import ContractError
from oodbench.datasets import DataLayoutError, get_split, require_available
from oodbench.datasets import _io
from oodbench.datasets import _trees as T

COUNT_HINT = "(pass check_count=False / --no-count-check to evaluate a partial copy)"
FS_VALUES = "expected 0 (in-distribution), 1 (anomaly), 255 (void)"


def _error(exc_type, fn) -> str:
    with pytest.raises(exc_type) as err:
        fn()
    return str(err.value)


def _ids(split_name, root, **kw):
    return lambda: get_split(split_name, root, **kw).frame_ids()


def _load(split_name, root, fid, **kw):
    return lambda: get_split(split_name, root, **kw).load(fid)


# -- wrong frame count --------------------------------------------------------------------------
def test_wrong_frame_count(tmp_path):
    T.anomaly_track(tmp_path, val=9, test=())
    images = tmp_path / "dataset_AnomalyTrack" / "images"
    assert _error(DataLayoutError, _ids("smiyc-anomaly-val", tmp_path)) == (
        f"smiyc-anomaly-val: expected 10 frames under {images}, found 9 {COUNT_HINT}")
    assert len(get_split("smiyc-anomaly-val", tmp_path, check_count=False)) == 9
    (tmp_path / "oodbench_manifest.json").write_text('{"synthetic": true, "counts": {"smiyc-anomaly-val": 4}}')
    assert _error(DataLayoutError, _ids("smiyc-anomaly-val", tmp_path)) == (
        f"smiyc-anomaly-val: expected 4 frames (from {tmp_path / 'oodbench_manifest.json'}) under {images}, "
        f"found 9 {COUNT_HINT}")


def test_laf_noknown_partial_test_list(tmp_path):
    T.lost_and_found_test(tmp_path, ["20_Normal_Str_000000_000001"])
    assert _error(DataLayoutError, _ids("smiyc-laf-noknown", tmp_path)) == (
        f"smiyc-laf-noknown: expected 1203 LostAndFound test frames under "
        f"{tmp_path / 'dataset_LostAndFound' / 'leftImg8bit' / 'test'}, found 1 (the noKnown exclusions are "
        "positions in the full test list; pass check_count=False / --no-count-check to evaluate a partial "
        "copy without them)")


def test_empty_split_and_missing_dataset(tmp_path):
    T.anomaly_track(tmp_path, val=0, test=["cow0000"])
    assert _error(DataLayoutError, _ids("smiyc-anomaly-val", tmp_path, check_count=False)) == (
        f"smiyc-anomaly-val: no frames found under {tmp_path / 'dataset_AnomalyTrack' / 'images'}")
    assert _error(DataLayoutError, _ids("smiyc-obstacle-val", tmp_path)) == (
        f"smiyc-obstacle-val: missing SMIYC ObstacleTrack images folder {tmp_path / 'dataset_ObstacleTrack' / 'images'}")
    assert _error(DataLayoutError, _ids("fishyscapes-static-val", tmp_path)) == (
        f"fishyscapes-static-val: not found under {tmp_path}: neither the official layout "
        f"({tmp_path / 'fs_val_v3'} or {tmp_path / 'fishyscapes_static'}) nor the preprocessed layout "
        f"({tmp_path / 'fishyscapes' / 'Static'})")


def test_dataset_all_fails_when_nothing_is_found(tmp_path):
    message = _error(DataLayoutError, lambda: require_available(tmp_path))
    assert message.startswith(f"no labelled dataset found under {tmp_path}:\n  fishyscapes-laf-val: ")
    assert f"\n  road-anomaly: road-anomaly: not found under {tmp_path}: " in message


# -- missing label / image ----------------------------------------------------------------------
def test_missing_label(tmp_path):
    T.anomaly_track(tmp_path, test=())
    label = tmp_path / "dataset_AnomalyTrack" / "labels_masks" / "validation0004_labels_semantic.png"
    label.unlink()  # the *_color.png decoy next to it must not stand in for it
    assert _error(DataLayoutError, _ids("smiyc-anomaly-val", tmp_path)) == f"smiyc-anomaly-val: missing label {label}"


def test_missing_label_streethazards_and_laf(tmp_path):
    T.streethazards_test(tmp_path)
    label = tmp_path / "StreetHazards/test/annotations/test/t6/0003.png"
    label.unlink()
    assert _error(DataLayoutError, _ids("streethazards-test", tmp_path, check_count=False)) == (
        f"streethazards-test: missing label {label}")
    T.lost_and_found_test(tmp_path, ["20_Normal_Str_000000_000001"], labels=False)
    with pytest.warns(RuntimeWarning):
        message = _error(DataLayoutError, _ids("smiyc-laf-noknown", tmp_path, check_count=False))
    assert message == (f"smiyc-laf-noknown: missing label {tmp_path}/dataset_LostAndFound/gtCoarse/test/"
                       "20_Normal_Str/20_Normal_Str_000000_000001_gtCoarse_labelIds.png")


def test_missing_image_fishyscapes_official(tmp_path):
    lafid = "04_Maurener_Weg_8_000000_000030"
    T.fishyscapes_laf_official(tmp_path, [lafid])
    image = tmp_path / f"dataset_LostAndFound/leftImg8bit/train/04_Maurener_Weg_8/{lafid}_leftImg8bit.png"
    image.unlink()
    label = tmp_path / "fishyscapes_lostandfound" / f"0000_{lafid}_labels.png"
    assert _error(DataLayoutError, _ids("fishyscapes-laf-val", tmp_path, check_count=False)) == (
        f"fishyscapes-laf-val: missing image for {label}: neither {image} nor "
        f"{str(image).replace('/train/', '/test/')}")


def test_missing_image_or_overlay_static_and_preprocessed(tmp_path):
    T.fishyscapes_static_official(tmp_path, ["lindau_000001_000019"])
    overlay = tmp_path / "fs_val_v3" / "0000_lindau_000001_000019_rgb.npz"
    overlay.unlink()
    assert _error(DataLayoutError, _ids("fishyscapes-static-val", tmp_path, check_count=False)) == (
        f"fishyscapes-static-val: missing overlay {overlay}")
    T.fishyscapes_static_official(tmp_path, ["lindau_000001_000019"])
    image = tmp_path / "cityscapes/leftImg8bit/val/lindau/lindau_000001_000019_leftImg8bit.png"
    image.unlink()
    assert _error(DataLayoutError, _ids("fishyscapes-static-val", tmp_path, check_count=False)) == (
        f"fishyscapes-static-val: missing Cityscapes image {image}")
    T.fishyscapes_preprocessed(tmp_path / "p", "LostAndFound", ["a", "b"])
    original = tmp_path / "p/fishyscapes/LostAndFound/original/b.png"
    original.unlink()
    assert _error(DataLayoutError, _ids("fishyscapes-laf-val", tmp_path / "p", check_count=False)) == (
        f"fishyscapes-laf-val: missing image {original} for label {tmp_path}/p/fishyscapes/LostAndFound/labels/b.png")


def test_missing_image_road_anomaly_listed(tmp_path):
    T.road_anomaly_official(tmp_path, ["a", "b"])
    image = tmp_path / "RoadAnomaly_jpg" / "frames" / "b.jpg"
    image.unlink()
    assert _error(DataLayoutError, _ids("road-anomaly", tmp_path, check_count=False)) == (
        f"road-anomaly: missing image {image}")


# -- size mismatch --------------------------------------------------------------------------------
def test_image_label_size_mismatch(tmp_path):
    T.road_anomaly_official(tmp_path, ["a"])
    label = tmp_path / "RoadAnomaly_jpg/frames/a.labels/labels_semantic.png"
    T.write_label(label, np.zeros((3, 5), np.uint8))
    assert _error(ContractError, _load("road-anomaly", tmp_path, "a", check_count=False)) == (
        f"{label}: label size 5x3 does not match image {tmp_path}/RoadAnomaly_jpg/frames/a.jpg size 6x4")


def test_static_overlay_shape_mismatch(tmp_path):
    T.fishyscapes_static_official(tmp_path, ["lindau_000001_000019"])
    overlay = tmp_path / "fs_val_v3" / "0000_lindau_000001_000019_rgb.npz"
    with open(overlay, "wb") as fh:
        np.savez(fh, rgb=np.zeros((4, 5, 3), np.int16))
    image = tmp_path / "cityscapes/leftImg8bit/val/lindau/lindau_000001_000019_leftImg8bit.png"
    assert _error(ContractError, _load("fishyscapes-static-val", tmp_path, "lindau_000001_000019", check_count=False)) == (
        f"{overlay}: overlay int16 (4, 5, 3) does not match image {image} (4, 6, 3) "
        "(a signed RGB offset of the image's shape is expected)")
    with open(overlay, "wb") as fh:
        np.savez(fh, other=np.zeros((4, 6, 3), np.int16))
    assert _error(ContractError, _load("fishyscapes-static-val", tmp_path, "lindau_000001_000019", check_count=False)) == (
        f"{overlay}: overlay archive has no array 'rgb' (found ['other'])")


# -- unexpected label values ----------------------------------------------------------------------
def test_unexpected_label_values_fishyscapes(tmp_path):
    T.fishyscapes_preprocessed(tmp_path, "LostAndFound", ["a"])
    label = tmp_path / "fishyscapes/LostAndFound/labels/a.png"
    T.write_label(label, T.raw_label((0, 1, 2, 254, 255)))
    assert _error(ContractError, _load("fishyscapes-laf-val", tmp_path, "a", check_count=False)) == (
        f"{label}: unexpected label values [2, 254]; {FS_VALUES}")


def test_unexpected_label_values_road_anomaly_and_streethazards(tmp_path):
    T.road_anomaly_official(tmp_path, ["a"])
    label = tmp_path / "RoadAnomaly_jpg/frames/a.labels/labels_semantic.png"
    T.write_label(label, T.raw_label((0, 1, 2, 255)))
    assert _error(ContractError, _load("road-anomaly", tmp_path, "a", check_count=False)) == (
        f"{label}: unexpected label values [255]; expected 0 (background), 1 (road), 2 (anomaly)")
    T.road_anomaly_preprocessed(tmp_path / "p", ["a"])
    label = tmp_path / "p/road_anomaly/labels/a.png"
    T.write_label(label, T.raw_label((0, 1, 2)))
    assert _error(ContractError, _load("road-anomaly", tmp_path / "p", "a", check_count=False)) == (
        f"{label}: unexpected label values [2]; expected 0 (inlier), 1 (anomaly)")
    T.streethazards_test(tmp_path)
    label = tmp_path / "StreetHazards/test/annotations/test/t5/0000.png"
    T.write_label(label, T.raw_label((0, 1, 14, 15)))
    assert _error(ContractError, _load("streethazards-test", tmp_path, "0000", check_count=False)) == (
        f"{label}: unexpected label values [0, 15]; expected 1..14 (StreetHazards classes; 14 = anomaly)")


def test_colour_visualisation_is_not_a_label(tmp_path):
    T.road_anomaly_preprocessed(tmp_path, ["a"])
    label = tmp_path / "road_anomaly/labels/a.png"
    T.write_image(label, seed=3)
    assert _error(ContractError, _load("road-anomaly", tmp_path, "a", check_count=False)) == (
        f"{label}: cannot read label: a colour image with differing channels is not a label map "
        "(is it a *_color.png visualisation?)")


# -- unreadable images ------------------------------------------------------------------------------
def test_unreadable_webp(tmp_path, monkeypatch):
    T.obstacle_track(tmp_path)
    image = tmp_path / "dataset_ObstacleTrack" / "images" / "validation_3.webp"
    image.write_bytes(b"this is not a WebP file")
    load = _load("smiyc-obstacle-val", tmp_path, "validation_3")
    expected = f"{image}: cannot read image: UnidentifiedImageError: cannot identify image file {str(image)!r}"
    assert _error(ContractError, load) == expected
    monkeypatch.setattr(_io.features, "check", lambda name: False)  # a Pillow built without WebP
    assert _error(ContractError, load) == (
        expected + " (this Pillow was built without WebP support, needed for SMIYC ObstacleTrack images)")


def test_truncated_png(tmp_path):
    T.streethazards_test(tmp_path)
    image = tmp_path / "StreetHazards/test/images/test/t6/0002.png"
    T.write_image(image, size=(40, 60))
    image.write_bytes(image.read_bytes()[:-40])
    message = _error(ContractError, _load("streethazards-test", tmp_path, "0002", check_count=False))
    assert message.startswith(f"{image}: cannot read image: OSError: ")


# -- ambiguous layouts ------------------------------------------------------------------------------
def test_ambiguous_layouts(tmp_path):
    T.fishyscapes_static_official(tmp_path, ["lindau_000001_000019"])
    T.fishyscapes_static_official(tmp_path, ["lindau_000001_000019"], folder="fishyscapes_static")
    assert _error(DataLayoutError, _ids("fishyscapes-static-val", tmp_path, check_count=False)) == (
        f"fishyscapes-static-val: ambiguous layout under {tmp_path}: both {tmp_path / 'fs_val_v3'} and "
        f"{tmp_path / 'fishyscapes_static'} are present; keep only one")
    T.road_anomaly_official(tmp_path, ["a"])
    T.road_anomaly_preprocessed(tmp_path, ["a"])
    assert _error(DataLayoutError, _ids("road-anomaly", tmp_path, check_count=False)) == (
        f"road-anomaly: ambiguous layout under {tmp_path}: both the official layout "
        f"({tmp_path / 'RoadAnomaly_jpg'}) and the preprocessed layout ({tmp_path / 'road_anomaly'}) are present; "
        "pass layout='official' or layout='preprocessed'")
    T.fishyscapes_laf_official(tmp_path, ["04_Maurener_Weg_8_000000_000030"])
    T.fishyscapes_preprocessed(tmp_path, "LostAndFound", ["04_Maurener_Weg_8_000000_000030"])
    assert _error(DataLayoutError, _ids("fishyscapes-laf-val", tmp_path, check_count=False)) == (
        f"fishyscapes-laf-val: ambiguous layout under {tmp_path}: both the official layout "
        f"({tmp_path / 'fishyscapes_lostandfound'}) and the preprocessed layout "
        f"({tmp_path / 'fishyscapes' / 'LostAndFound'}) are present; pass layout='official' or layout='preprocessed'")
    assert _error(ValueError, lambda: get_split("road-anomaly", tmp_path, layout="zip")) == (
        "road-anomaly: layout must be one of ('official', 'preprocessed') or None, got 'zip'")


def test_ambiguous_fishyscapes_pairing(tmp_path):
    lafid = "04_Maurener_Weg_8_000000_000030"
    T.fishyscapes_laf_official(tmp_path, [lafid, "01_Hanns_Klemm_Str_45_000001_000060"])
    T.write_label(tmp_path / "fishyscapes_lostandfound" / "1_01_Hanns_Klemm_Str_45_000001_000060_labels.png",
                  T.raw_label((0,)))
    assert _error(DataLayoutError, _ids("fishyscapes-laf-val", tmp_path, check_count=False)) == (
        f"fishyscapes-laf-val: {tmp_path}/fishyscapes_lostandfound/0001_01_Hanns_Klemm_Str_45_000001_000060_labels.png "
        f"and {tmp_path}/fishyscapes_lostandfound/1_01_Hanns_Klemm_Str_45_000001_000060_labels.png have the same "
        "Fishyscapes index 0001")
    T.write_image(tmp_path / f"dataset_LostAndFound/leftImg8bit/test/04_Maurener_Weg_8/{lafid}_leftImg8bit.png")
    (tmp_path / "fishyscapes_lostandfound" / "1_01_Hanns_Klemm_Str_45_000001_000060_labels.png").unlink()
    train = tmp_path / f"dataset_LostAndFound/leftImg8bit/train/04_Maurener_Weg_8/{lafid}_leftImg8bit.png"
    assert _error(DataLayoutError, _ids("fishyscapes-laf-val", tmp_path, check_count=False)) == (
        f"fishyscapes-laf-val: ambiguous image for {tmp_path}/fishyscapes_lostandfound/0000_{lafid}_labels.png: "
        f"both {train} and {str(train).replace('/train/', '/test/')}")


# -- other malformed inputs -------------------------------------------------------------------------
def test_malformed_manifest(tmp_path):
    T.anomaly_track(tmp_path, test=())
    manifest = tmp_path / "oodbench_manifest.json"
    manifest.write_text("{not json")
    assert _error(DataLayoutError, _ids("smiyc-anomaly-val", tmp_path)).startswith(
        f"{manifest}: cannot read the data manifest: Expecting property name")
    manifest.write_text(json.dumps({"counts": {"smiyc-anomaly-val": -1}}))
    assert _error(DataLayoutError, _ids("smiyc-anomaly-val", tmp_path)) == (
        f"{manifest}: 'counts' must map split names to non-negative integers, got {{'smiyc-anomaly-val': -1}}")


def test_unknown_obstacle_scene_and_misplaced_laf_image(tmp_path):
    T.obstacle_track(tmp_path, test={"motorway": 1})
    stray = tmp_path / "dataset_ObstacleTrack" / "images" / "parking_001.webp"
    T.write_image(stray)
    scenes = ("curvy-street, darkasphalt, darkasphalt2, driveway, gravel, greyasphalt, motorway, "
              "one-way-street, paving, snowstorm1, snowstorm2, validation")
    assert _error(DataLayoutError, _ids("smiyc-obstacle-val", tmp_path)) == (
        f"smiyc-obstacle-val: unexpected image {stray}: scene 'parking' is not an ObstacleTrack scene (known: {scenes})")
    image = tmp_path / "dataset_LostAndFound/leftImg8bit/test/02_Wrong/20_Normal_Str_000000_000001_leftImg8bit.png"
    T.write_image(image)
    assert _error(DataLayoutError, _ids("smiyc-laf-noknown", tmp_path)) == (
        f"smiyc-laf-noknown: unexpected image {image}: expected <NN>_<scene>/<NN>_<scene>_<seq:6>_<frame:6>"
        "_leftImg8bit.png")


def test_streethazards_towns_and_duplicate_ids(tmp_path):
    T.streethazards_test(tmp_path)
    images = tmp_path / "StreetHazards/test/images/test"
    T.write_image(images / "t6" / "0000.png")
    assert _error(DataLayoutError, _ids("streethazards-test", tmp_path, check_count=False)) == (
        f"streethazards-test: frame id '0000' is not unique: {images}/t5/0000.png and {images}/t6/0000.png")
    (images / "t7").mkdir()
    assert _error(DataLayoutError, _ids("streethazards-test", tmp_path, check_count=False)) == (
        f"streethazards-test: unexpected town folder {images / 't7'} (the test towns are t5 and t6)")


def test_unknown_frame_id(tmp_path):
    T.anomaly_track(tmp_path, test=())
    assert _error(KeyError, _load("smiyc-anomaly-val", tmp_path, "validation0042")) == (
        f"\"smiyc-anomaly-val: no frame 'validation0042' under {tmp_path}\"")


def test_readers_name_missing_files(tmp_path):
    missing = Path(tmp_path) / "nope.png"
    assert _error(DataLayoutError, lambda: _io.read_image(missing)) == f"missing image {missing}"
    assert _error(DataLayoutError, lambda: _io.read_label(missing)) == f"missing label {missing}"
