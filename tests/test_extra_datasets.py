"""Extra training sets (#16.5): Mapillary Vistas v1.2 / v2.0 and WildDash 2 in their official
layouts, labels mapped to Cityscapes train ids.

Exact-value checks: the synthetic scene frames re-encode Cityscapes-format frames, so their mapped
labels must equal the Cityscapes ``labelTrainIds`` pixel for pixel; the class charts hold one cell
per class id, checked against hand-written expectations."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from cityscapesscripts.helpers.labels import name2label
from oodbench.datasets import DataLayoutError
from oodbench.datasets.cityscapes import CityscapesSegmentation
from oodbench.datasets.extra import build_extra_training_sets, parse_extra_names
from oodbench.datasets.synth import generate, read_manifest
from oodbench.datasets.synth.command import add_synth_parser
from oodbench.datasets.synth.extra import VISTAS_V12_NAMES, VISTAS_V20_NAMES, WD2_CATEGORIES, write_extra
from oodbench.datasets.synth.training import write_cityscapes
from oodbench.datasets.synth.writers import TreeWriter
from oodbench.datasets.vistas import VISTAS_TO_CITYSCAPES, MapillaryVistas
from oodbench.datasets.wilddash import WD2_TO_CITYSCAPES, WildDash2, normalise_category_name, wd2_train_id_lut
from PIL import Image

SIZE = (64, 128)
ALL = ("vistas-v1.2", "vistas-v2.0", "wilddash2")

# hand-written expectations (Cityscapes train ids), independent of the tables under test
V12_EXPECTED = {
    "construction--flat--road": 0, "construction--flat--sidewalk": 1, "construction--barrier--curb": 1,
    "construction--flat--parking": 0, "construction--flat--bike-lane": 0, "marking--general": 0,
    "construction--structure--building": 2, "construction--structure--bridge": 2, "construction--barrier--wall": 3,
    "construction--barrier--fence": 4, "construction--barrier--guard-rail": 4, "object--support--pole": 5,
    "object--traffic-light": 6, "object--traffic-sign--front": 7, "object--support--traffic-sign-frame": 7,
    "nature--vegetation": 8, "nature--terrain": 9, "nature--snow": 9, "nature--sky": 10, "human--person": 11,
    "human--rider--bicyclist": 12, "object--vehicle--car": 13, "object--vehicle--truck": 14,
    "object--vehicle--bus": 15, "object--vehicle--on-rails": 16, "object--vehicle--motorcycle": 17,
    "object--vehicle--bicycle": 18, "object--traffic-sign--back": 255, "object--billboard": 255,
    "object--vehicle--caravan": 255, "object--vehicle--trailer": 255, "void--ego-vehicle": 255,
    "void--unlabeled": 255, "animal--bird": 255, "nature--water": 255, "object--manhole": 255,
}
V20_EXPECTED = {
    "construction--flat--road": 0, "construction--flat--sidewalk": 1, "human--person--individual": 11,
    "human--person--person-group": 11, "marking--discrete--stop-line": 0, "marking-only--discrete--text": 0,
    "construction--flat--road-shoulder": 0, "construction--flat--driveway": 255,
    "object--traffic-light--pedestrians": 6, "object--traffic-sign--direction-front": 7,
    "object--traffic-sign--direction-back": 255, "construction--structure--garage": 2,
    "object--support--pole-group": 255, "object--vehicle--vehicle-group": 255, "object--vehicle--car": 13,
    "void--static": 255, "object--traffic-cone": 255,
}
WD2_EXPECTED = {
    "road": 0, "sidewalk": 1, "building": 2, "wall": 3, "fence": 4, "pole": 5, "trafficlight": 6,
    "trafficsign": 7, "vegetation": 8, "terrain": 9, "sky": 10, "person": 11, "rider": 12, "car": 13,
    "truck": 14, "bus": 15, "onrails": 16, "motorcycle": 17, "bicycle": 18, "van": 13, "pickup": 14,
    "roadmarking": 0, "curb": 1, "curbcut": 1, "curbterrain": 9, "trafficsignframe": 5, "utilitypole": 5,
    "bicyclist": 12, "autorickshaw": 17, "guardrail": 255, "parking": 255, "billboard": 255,
    "streetlight": 255, "egovehicle": 255, "dashcammount": 255, "unlabeled": 255, "caravan": 255, "water": 255,
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """Cityscapes train/val frames 0..2 / 0..1 and every extra set (the v2.0 release layout)."""
    root = tmp_path_factory.mktemp("extra") / "data"
    wr = TreeWriter(root)
    write_cityscapes(wr, 5, SIZE, 3, 2)
    info = write_extra(wr, 5, SIZE, ALL)
    return root, info


@pytest.fixture(scope="module")
def tree_v12(tmp_path_factory):
    """Only Vistas v1.2: the v1.2 release layout (config.json, <split>/labels)."""
    root = tmp_path_factory.mktemp("extra12") / "data"
    wr = TreeWriter(root)
    write_cityscapes(wr, 5, SIZE, 3, 2)
    info = write_extra(wr, 5, SIZE, ("vistas-v1.2",))
    return root, info


def _chart_cell(k: int, n: int, size=SIZE, cols: int = 16) -> tuple[int, int]:
    rows = -(-n // cols)
    r, c = divmod(k, cols)
    return int((r + 0.5) * size[0] / rows), int((c + 0.5) * size[1] / cols)


def _cityscapes_by_stem(root, split):
    cs = CityscapesSegmentation(root, split)
    return {img.name[: -len("_leftImg8bit.png")]: i for i, (img, _, _) in enumerate(cs.files)}, cs


def _check_against_cityscapes(ds, frames: dict, root, split):
    index, cs = _cityscapes_by_stem(root, split)
    checked = 0
    for i, (img_path, _) in enumerate(ds.files):
        src = frames[img_path.stem]
        if src == "chart":
            continue
        image, label = ds[i]
        cs_image, cs_label = cs[index[src]]
        assert image.dtype == np.uint8 and image.shape == cs_image.shape
        assert label.dtype == np.uint8 and label.shape == cs_label.shape
        np.testing.assert_array_equal(label, cs_label)
        assert np.abs(image.astype(int) - cs_image.astype(int)).mean() < 6  # JPEG of the same scene
        checked += 1
    assert checked == len(frames) - 1


@pytest.mark.parametrize("version", ["v1.2", "v2.0"])
@pytest.mark.parametrize("split", ["training", "validation"])
def test_vistas_scene_frames_equal_the_cityscapes_train_ids(tree, version, split):
    root, info = tree
    ds = MapillaryVistas(root, split, version)
    assert len(ds) == len(info["vistas"][split])
    _check_against_cityscapes(ds, info["vistas"][split], root, "train" if split == "training" else "val")


def test_vistas_v12_release_layout(tree_v12):
    root, info = tree_v12
    assert (root / "vistas" / "config.json").is_file() and (root / "vistas" / "training" / "labels").is_dir()
    ds = MapillaryVistas(root, "training", "v1.2")
    assert ds.config.name == "config.json"
    _check_against_cityscapes(ds, info["vistas"]["training"], root, "train")
    with pytest.raises(DataLayoutError, match="config_v2.0.json"):
        MapillaryVistas(root, "training", "v2.0")


@pytest.mark.parametrize("version,names,expected", [("v1.2", VISTAS_V12_NAMES, V12_EXPECTED),
                                                    ("v2.0", VISTAS_V20_NAMES, V20_EXPECTED)])
def test_vistas_chart_maps_every_class_id(tree, version, names, expected):
    root, info = tree
    ds = MapillaryVistas(root, "training", version)
    assert ds.class_names == list(names)
    i = [p.stem for p, _ in ds.files].index(next(k for k, v in info["vistas"]["training"].items() if v == "chart"))
    raw = Image.open(ds.files[i][1])
    assert raw.mode == "P"  # palette PNG, indices = class ids
    raw = np.asarray(raw)
    _, label = ds[i]
    for k, name in enumerate(names):
        y, x = _chart_cell(k, len(names))
        assert raw[y, x] == k
        want = expected.get(name)
        if want is None:  # not hand-listed: whatever the table says, resolved through cityscapesscripts
            cs = VISTAS_TO_CITYSCAPES.get(name)
            want = 255 if cs is None else name2label[cs].trainId
        assert label[y, x] == want, name
    assert set(np.unique(label)) == set(range(19)) | {255}


def test_wilddash2_scene_frames_and_chart(tree):
    root, info = tree
    ds = WildDash2(root)
    frames = info["wilddash2"]["frames"]
    assert len(ds) == len(frames)
    _check_against_cityscapes(ds, frames, root, "train")
    i = [p.stem for p, _ in ds.files].index(next(k for k, v in frames.items() if v == "chart"))
    pan = np.asarray(Image.open(ds.files[i][1]).convert("RGB")).astype(np.int64)
    seg = pan[..., 0] + 256 * pan[..., 1] + 65536 * pan[..., 2]
    assert seg.max() > 65535  # the blue channel is used
    _, label = ds[i]
    n = len(WD2_CATEGORIES) + 1
    for cid, name, _ in WD2_CATEGORIES:
        y, x = _chart_cell(cid, n)
        if name in WD2_EXPECTED:
            assert label[y, x] == WD2_EXPECTED[name], name
    y, x = _chart_cell(len(WD2_CATEGORIES), n)
    assert seg[y, x] == 0 and label[y, x] == 255  # void segment
    assert set(np.unique(label)) == set(range(19)) | {255}


def test_mapping_tables_are_well_formed():
    known = set(VISTAS_V12_NAMES) | set(VISTAS_V20_NAMES)
    assert len(VISTAS_V12_NAMES) == 66 and len(VISTAS_V20_NAMES) == 124
    assert set(VISTAS_TO_CITYSCAPES) <= known, set(VISTAS_TO_CITYSCAPES) - known  # no typos
    for table in (VISTAS_TO_CITYSCAPES, WD2_TO_CITYSCAPES):
        for src, cs in table.items():
            assert cs in name2label, (src, cs)
    assert all(0 <= name2label[c].trainId < 19 for c in VISTAS_TO_CITYSCAPES.values())
    assert {n for _, n, _ in WD2_CATEGORIES} <= set(WD2_TO_CITYSCAPES)
    assert [c for c, _, _ in WD2_CATEGORIES] == list(range(81))


def test_wilddash_names_are_normalised():
    assert normalise_category_name("Ego Vehicle(vehicle)") == "egovehicle"
    cats = [{"id": i, "name": n} for i, n in enumerate(
        ["traffic light", "Guard-Rail", "On Rails", "van", "pickup", "street_light", "something new"])]
    assert wd2_train_id_lut(cats) == {0: 6, 1: 255, 2: 16, 3: 13, 4: 14, 5: 255, 6: 255}


def test_training_api_item_format_and_errors(tree, tmp_path):
    root, _ = tree
    assert parse_extra_names("vistas, wilddash2,vistas-v1.2") == ["vistas-v1.2", "wilddash2"]
    with pytest.raises(ValueError, match="vistas-v2.0"):
        parse_extra_names("vistas,kitti")
    sets = build_extra_training_sets("vistas,vistas-v2.0,wilddash2", root)
    assert [type(s).__name__ for s in sets] == ["MapillaryVistas", "MapillaryVistas", "WildDash2"]
    cs = CityscapesSegmentation(root, "train")
    concat = torch.utils.data.ConcatDataset([cs, *sets])
    assert len(concat) == len(cs) + sum(len(s) for s in sets)
    for idx in (0, len(cs), len(concat) - 1):
        image, label = concat[idx]
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert label.dtype == np.uint8 and label.shape == image.shape[:2]
        assert set(np.unique(label)) <= set(range(19)) | {255}
    # rescaling keeps the label values (nearest) and sets the short side
    small = build_extra_training_sets("wilddash2", root, short_side=32)[0]
    image, label = small[1]
    assert image.shape[:2] == label.shape == (32, 64)
    assert set(np.unique(label)) <= set(np.unique(sets[2][1][1]))
    # missing data names the folder
    with pytest.raises(DataLayoutError, match="wd_public_02"):
        build_extra_training_sets("wilddash2", tmp_path)
    with pytest.raises(DataLayoutError, match="vistas"):
        build_extra_training_sets("vistas", tmp_path)


def test_missing_label_and_broken_json_are_named(tmp_path):
    wr = TreeWriter(tmp_path)
    write_cityscapes(wr, 1, SIZE, 3, 2)
    write_extra(wr, 1, SIZE, ("vistas-v2.0", "wilddash2"))
    label = next((tmp_path / "vistas" / "training" / "v2.0" / "labels").glob("*.png"))
    label.unlink()
    with pytest.raises(DataLayoutError, match=label.name):
        MapillaryVistas(tmp_path, "training", "v2.0")
    pan = next((tmp_path / "wd_public_02" / "panoptic").glob("*.png"))
    pan.unlink()
    with pytest.raises(DataLayoutError, match=pan.name):
        WildDash2(tmp_path)
    (tmp_path / "wd_public_02" / "panoptic.json").write_text("{not json")
    with pytest.raises(DataLayoutError, match="panoptic.json"):
        WildDash2(tmp_path)


def test_generate_with_extras_and_the_cli_flag(tmp_path, capsys):
    small = dict(size=SIZE, n_train=4, n_val=4, n_coco=13, n_per_split=2)
    out = generate(tmp_path / "g", seed=2, extra=("wilddash2", "vistas-v1.2"), **small)
    man = read_manifest(out)
    assert man["params"]["extra"] == ["vistas-v1.2", "wilddash2"]
    assert man["train"]["vistas"]["layout"] == "v1.2 release"
    assert set(man["train"]["wilddash2"]["frames"].values()) >= {"chart"}
    assert len(WildDash2(out)) == 4 and len(MapillaryVistas(out)) == 4
    assert json.loads((out / "wd_public_02" / "panoptic.json").read_text())["categories"][35]["name"] == "van"
    with pytest.raises(ValueError, match="extra"):
        generate(tmp_path / "h", seed=2, extra=("kitti",), **small)

    parser = argparse.ArgumentParser()
    add_synth_parser(parser.add_subparsers())
    args = parser.parse_args(["synth", "--out", str(tmp_path / "c"), "--extra", "vistas-v1.2,kitti"])
    assert args.func(args) == 2
    assert "kitti" in capsys.readouterr().err
