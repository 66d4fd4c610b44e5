"""Training-data readers: Cityscapes train ids (files or label ids via cityscapesscripts) and the
COCO outlier preparation (Meta-OoD filter, 0/254 union masks) with its pairs listing."""
from __future__ import annotations

import argparse
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from oodbench.datasets import DataLayoutError
from oodbench.datasets.cityscapes import CityscapesSegmentation, label_id_to_train_id_lut
from oodbench.datasets.coco import EXCLUDED_CATEGORIES, CocoOutliers, add_prepare_parser, prepare_coco_ood
from oodbench.datasets.synth import read_manifest


# ------------------------------------------------------------------------------------ Cityscapes
def test_cityscapes_reads_the_synthetic_train_set(synth_root):
    ds = CityscapesSegmentation(synth_root, "train")
    assert len(ds) == read_manifest(synth_root)["train"]["cityscapes"]["train"]
    assert [f[0] for f in ds.files] == sorted(f[0] for f in ds.files)
    image, ids = ds[0]
    assert image.dtype == np.uint8 and image.shape[2] == 3 and ids.shape == image.shape[:2]
    assert set(np.unique(ids).tolist()) <= set(range(19)) | {255}
    assert CityscapesSegmentation(synth_root / "cityscapes", "val").root == synth_root / "cityscapes"


def test_label_ids_fallback_equals_train_id_files(synth_root, tmp_path):
    src = synth_root / "cityscapes"
    dst = tmp_path / "cityscapes"
    city = sorted((src / "leftImg8bit/val").iterdir())[0].name
    shutil.copytree(src / "leftImg8bit/val" / city, dst / "leftImg8bit/val" / city)
    (dst / "gtFine/val" / city).mkdir(parents=True)
    for p in (src / "gtFine/val" / city).glob("*_labelIds.png"):
        shutil.copy(p, dst / "gtFine/val" / city / p.name)
    with_ids = CityscapesSegmentation(synth_root, "val")
    fallback = CityscapesSegmentation(tmp_path, "val")
    assert not any(f[2] for f in fallback.files)
    by_name = {f[0].name: i for i, f in enumerate(with_ids.files)}
    for i, f in enumerate(fallback.files):
        np.testing.assert_array_equal(fallback[i][1], with_ids[by_name[f[0].name]][1])


def test_label_lut_follows_cityscapesscripts():
    lut = label_id_to_train_id_lut()
    assert lut[7] == 0 and lut[26] == 13 and lut[33] == 18  # road, car, bicycle
    assert lut[0] == lut[1] == lut[4] == lut[29] == 255       # unlabeled, ego, static, caravan


def test_cityscapes_errors_name_the_problem(synth_root, tmp_path):
    with pytest.raises(DataLayoutError, match="leftImg8bit"):
        CityscapesSegmentation(tmp_path)
    city = "aachen"
    (tmp_path / "leftImg8bit/train" / city).mkdir(parents=True)
    (tmp_path / "gtFine/train" / city).mkdir(parents=True)
    img = tmp_path / "leftImg8bit/train" / city / "aachen_000000_000019_leftImg8bit.png"
    Image.fromarray(np.zeros((4, 8, 3), np.uint8)).save(img)
    with pytest.raises(DataLayoutError, match="aachen_000000_000019_leftImg8bit.png"):
        CityscapesSegmentation(tmp_path)
    bad = tmp_path / "gtFine/train" / city / "aachen_000000_000019_gtFine_labelTrainIds.png"
    Image.fromarray(np.full((4, 8), 26, np.uint8)).save(bad)  # a label id under the train-id name
    with pytest.raises(DataLayoutError, match="26"):
        CityscapesSegmentation(tmp_path)[0]
    with pytest.raises(ValueError, match="test"):
        CityscapesSegmentation(tmp_path, "test")


# ------------------------------------------------------------------------------------ COCO
def _coco_tree(tmp_path, images, annotations, drop_category=None):
    root = tmp_path / "coco"
    (root / "train2017").mkdir(parents=True)
    (root / "annotations").mkdir()
    for im in images:
        Image.fromarray(np.zeros((im["height"], im["width"], 3), np.uint8)).save(root / "train2017" / im["file_name"])
    names = [*EXCLUDED_CATEGORIES, "train", "kite"]
    cats = [{"id": i + 1, "name": n, "supercategory": "x"} for i, n in enumerate(names) if n != drop_category]
    doc = {"images": images, "annotations": annotations, "categories": cats}
    (root / "annotations/instances_train2017.json").write_text(json.dumps(doc))
    return root, {c["name"]: c["id"] for c in cats}


def _img(i, h, w):
    return {"id": i, "file_name": f"{i:012d}.jpg", "height": h, "width": w}


def _square(ann_id, img_id, cat, x0, y0, s, crowd=False, h=480, w=480):
    if crowd:
        m = np.zeros((h, w), np.uint8, order="F")
        m[y0:y0 + s, x0:x0 + s] = 1
        rle = mask_utils.encode(m)
        seg = {"counts": rle["counts"].decode(), "size": [h, w]}
    else:
        seg = [[x0, y0, x0 + s, y0, x0 + s, y0 + s, x0, y0 + s]]
    return {"id": ann_id, "image_id": img_id, "category_id": cat, "segmentation": seg, "area": s * s,
            "bbox": [x0, y0, s, s], "iscrowd": int(crowd)}


def test_prepare_filters_and_writes_union_masks(tmp_path):
    ids = dict(zip([*EXCLUDED_CATEGORIES, "train", "kite"], range(1, 11)))
    images = [_img(1, 480, 480), _img(2, 480, 640), _img(3, 479, 640), _img(4, 640, 479), _img(5, 500, 500),
              _img(6, 480, 480), _img(7, 480, 480)]
    anns = [
        _square(10, 1, ids["kite"], 10, 10, 40), _square(11, 1, ids["train"], 30, 30, 40),  # overlap: one union
        _square(12, 1, ids["kite"], 200, 200, 20, crowd=True),                                # crowd counts too
        _square(20, 2, ids["traffic light"], 10, 10, 10, h=480, w=640),                       # excluded class
        _square(30, 3, ids["kite"], 10, 10, 10, h=479, w=640),                                # too small
        _square(40, 4, ids["kite"], 10, 10, 10, h=640, w=479),                                # too small
        _square(60, 6, ids["person"], 10, 10, 10), _square(61, 6, ids["kite"], 100, 100, 10),  # person: excluded
        _square(70, 7, ids["stop sign"], 10, 10, 10),
    ]
    root, _ = _coco_tree(tmp_path, images, anns)
    stats = prepare_coco_ood(tmp_path, progress=False)
    assert stats["images"] == 7 and stats["excluded_category"] == 3 and stats["too_small"] == 2
    assert stats["kept"] == stats["written"] == 2 and stats["without_objects"] == 1
    out = root / "annotations/ood_seg_train2017"
    assert sorted(p.name for p in out.iterdir()) == ["000000000001.png", "000000000005.png"]
    m1 = np.asarray(Image.open(out / "000000000001.png"))
    assert m1.shape == (480, 480) and set(np.unique(m1).tolist()) == {0, 254}
    assert (m1[200:220, 200:220] == 254).all()                # the crowd RLE, exact
    assert (m1[15:45, 15:45] == 254).all() and (m1[55:65, 55:65] == 254).all() and m1[100, 100] == 0
    assert not np.asarray(Image.open(out / "000000000005.png")).any()  # no annotations: all background
    again = prepare_coco_ood(root, progress=False)
    assert again["written"] == 0 and again["skipped_existing"] == 2
    pairs = list(CocoOutliers(tmp_path))
    assert [p[0].name for p in pairs] == ["000000000001.jpg", "000000000005.jpg"]
    assert all(m.parent == out for _, m in pairs)


def test_prepare_errors(tmp_path):
    root, _ = _coco_tree(tmp_path, [_img(1, 480, 480)], [], drop_category="stop sign")
    with pytest.raises(DataLayoutError, match="stop sign"):
        prepare_coco_ood(root, progress=False)
    root2, _ = _coco_tree(tmp_path / "b", [_img(1, 480, 480)], [])
    (root2 / "train2017" / "000000000001.jpg").unlink()
    with pytest.raises(DataLayoutError, match="000000000001.jpg"):
        prepare_coco_ood(root2, progress=False)
    with pytest.raises(DataLayoutError, match="oodbench prepare coco-ood"):
        CocoOutliers(root2)


def test_prepare_on_the_synthetic_coco_matches_the_manifest(synth_root, tmp_path, capsys):
    shutil.copytree(synth_root / "coco", tmp_path / "coco")
    parser = argparse.ArgumentParser()
    add_prepare_parser(parser.add_subparsers())
    args = parser.parse_args(["prepare", "coco-ood", "--data-root", str(tmp_path)])
    assert args.func(args) == 0
    assert "kept" in capsys.readouterr().out
    expected = read_manifest(synth_root)["train"]["coco"]
    pairs = CocoOutliers(tmp_path / "coco")
    assert len(pairs) == expected["kept"] > 0
    n_objects = 0
    for img_path, mask_path in pairs:
        image, mask = np.asarray(Image.open(img_path)), np.asarray(Image.open(mask_path))
        assert mask.shape == image.shape[:2] and min(mask.shape) >= 480
        assert set(np.unique(mask).tolist()) <= {0, 254}
        n_objects += int(mask.any())
    assert n_objects == expected["kept"] - expected["kept_without_objects"]
