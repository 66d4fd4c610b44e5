"""Synthetic training data: a Cityscapes-format street set and a COCO-format outlier source.

Cityscapes layout (``cityscapes/``): ``leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png``
and ``gtFine/{train,val}/<city>/..._gtFine_{labelIds,labelTrainIds,color}.png``; label ids and
train ids come from ``cityscapesscripts.helpers.labels`` via :mod:`.world`.

COCO layout (``coco/``): ``train2017/<12-digit id>.jpg`` and ``annotations/instances_train2017.json``
(images, annotations with polygon or uncompressed-RLE crowd segmentation, bbox, area, iscrowd,
categories including the eight that the Meta-OoD filter excludes).  Object masks are rasterised
with ``pycocotools`` from the very polygons written to the json, so annotation and pixels agree.
The set deliberately contains images the filter must drop: ones with a person/car/... instance,
and ones smaller than 480 px on a side; plus one image without annotations and one crowd (RLE)
annotation.
"""
from __future__ import annotations

import warnings

import numpy as np
from pycocotools import mask as mask_utils

from . import render as R
from .objects import oe_texture, radial_polygon
from .scene import make_scene
from .world import (COCO_CATEGORIES, COCO_EXCLUDED_NAMES, CS_LABEL_ID_LUT, CS_TRAIN_CITIES, CS_TRAIN_ID_LUT,
                    CS_VAL_CITIES, cityscapes_color_lut)
from .writers import TreeWriter

__all__ = ["cityscapes_scene", "write_cityscapes", "write_coco", "uncompressed_rle", "CityscapesFrame"]

KEY_CS_TRAIN, KEY_CS_VAL, KEY_COCO = 101, 102, 103


class CityscapesFrame:
    """A generated Cityscapes val frame kept in memory (Fishyscapes Static pastes onto it)."""

    def __init__(self, stem: str, city: str, image: np.ndarray, cls: np.ndarray, scene) -> None:
        self.stem, self.city, self.image, self.cls, self.scene = stem, city, image, cls, scene


def cityscapes_scene(seed: int, split: str, i: int, size: tuple[int, int]):
    """``(stem, city, scene)`` of Cityscapes-format frame ``i`` of ``split`` (``"train"``/``"val"``).

    The extra training sets (:mod:`.extra`) re-encode the same scenes, so their labels can be
    checked pixel by pixel against the Cityscapes ``labelTrainIds`` of the same frame.
    """
    cities, key = (CS_TRAIN_CITIES, KEY_CS_TRAIN) if split == "train" else (CS_VAL_CITIES, KEY_CS_VAL)
    rng = np.random.default_rng([seed, key, i])
    city = cities[i % len(cities)]
    stem = f"{city}_{i // len(cities):06d}_000019"
    h, w = size
    sc = make_scene(rng, h, w, road_style=str(rng.choice(["asphalt", "asphalt", "dark", "grey"])),
                    traffic=rng.uniform(0.3, 1.5), persons=rng.uniform(0.3, 1.5),
                    statics=int(rng.integers(0, 2)), ego=bool(rng.random() < 0.7))
    return stem, city, sc


def write_cityscapes(wr: TreeWriter, seed: int, size: tuple[int, int], n_train: int, n_val: int) -> list[CityscapesFrame]:
    """Write the Cityscapes-format train and val sets; return the val frames (for FS Static)."""
    colour = cityscapes_color_lut()
    val_frames = []
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            stem, city, sc = cityscapes_scene(seed, split, i, size)
            img = R.to_uint8(sc.image)
            label_ids = CS_LABEL_ID_LUT[sc.cls]
            base = f"cityscapes/gtFine/{split}/{city}/{stem}_gtFine"
            wr.image(f"cityscapes/leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png", img)
            wr.label(f"{base}_labelIds.png", label_ids)
            wr.label(f"{base}_labelTrainIds.png", CS_TRAIN_ID_LUT[sc.cls])
            wr.image(f"{base}_color.png", colour[label_ids])
            if split == "val":
                val_frames.append(CityscapesFrame(stem, city, img, sc.cls.copy(), sc))
    return val_frames


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE (column-major run lengths, starting with a run of zeros)."""
    flat = np.asarray(mask, bool).ravel(order="F")
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs = [0] + runs
    return {"counts": [int(r) for r in runs], "size": [int(mask.shape[0]), int(mask.shape[1])]}


def _bbox(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def _poly_mask(polys: list[list[float]], h: int, w: int) -> np.ndarray:
    with warnings.catch_warnings():  # pycocotools' __array__ under numpy 2 (harmless)
        warnings.simplefilter("ignore", DeprecationWarning)
        rles = mask_utils.frPyObjects(polys, h, w)
        return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def _round_poly(pts: np.ndarray, h: int, w: int) -> list[float]:
    pts = np.stack([np.clip(pts[:, 0], 0, w - 1), np.clip(pts[:, 1], 0, h - 1)], axis=1)
    return [round(float(v), 2) for v in pts.ravel()]


def _world_polys(rng, kind: str, h: int, w: int) -> tuple[list[list[float]], np.ndarray]:
    """Outline polygons and a colour for a person or car drawn in the street-scene style."""
    s = rng.uniform(0.3, 0.45) * min(h, w)
    cx, by = rng.uniform(0.6 * s, w - 0.6 * s), rng.uniform(s, h - 2)
    if kind == "person":
        head = radial_polygon(rng, cx, by - 0.92 * s, 0.08 * s, 10, 0.05)
        body = np.array([[cx - 0.15 * s, by - 0.84 * s], [cx + 0.15 * s, by - 0.84 * s], [cx + 0.12 * s, by],
                         [cx - 0.12 * s, by]])
        return [_round_poly(head, h, w), _round_poly(body, h, w)], np.array([160.0, 80, 70])
    body = np.array([[cx - 0.6 * s, by - 0.45 * s], [cx - 0.35 * s, by - 0.75 * s], [cx + 0.35 * s, by - 0.75 * s],
                     [cx + 0.6 * s, by - 0.45 * s], [cx + 0.6 * s, by], [cx - 0.6 * s, by]])
    return [_round_poly(body, h, w)], np.array([40.0, 60, 150])


def write_coco(wr: TreeWriter, seed: int, n_images: int) -> dict:
    """Write the COCO-format outlier source; return the filter's expected statistics."""
    cats = {c["name"]: c for c in COCO_CATEGORIES}
    excluded = [n for n in COCO_EXCLUDED_NAMES if n != "person"]
    kept_names = [c["name"] for c in COCO_CATEGORIES if c["name"] not in COCO_EXCLUDED_NAMES]
    images, annotations = [], []
    stats = {"images": n_images, "excluded_category": 0, "too_small": 0, "kept": 0, "kept_without_objects": 0}
    for i in range(n_images):
        rng = np.random.default_rng([seed, KEY_COCO, i])
        img_id = 100000 + 7919 * i  # distinct, not sequential
        small = i % 12 == 6
        if small:
            h, w = [(360, 640), (640, 427), (425, 640)][(i // 12) % 3]
        else:
            h, w = [(480, 640), (640, 480), (512, 512), (480, 576)][int(rng.integers(4))]
        # background: two muted colours, a horizon-like split and fractal texture
        a, b = rng.uniform(60, 200, 3), rng.uniform(40, 180, 3)
        split = rng.uniform(0.3, 0.7) * h
        yy = np.arange(h)[:, None, None]
        img = np.where(yy < split, a, b) + 40 * (R.fbm(rng, h, w, 24, 3)[..., None] - 0.5) + R.grain(rng, h, w, 4)
        objs: list[tuple[str, list, np.ndarray | None]] = []
        if i % 8 == 0:
            objs.append(("person", *_world_polys(rng, "person", h, w)))
        elif i % 8 == 4:
            name = excluded[(i // 8) % len(excluded)]
            if name == "car":
                objs.append(("car", *_world_polys(rng, "car", h, w)))
            else:
                objs.append((name, None, None))
        n_oe = 0 if i == 5 else int(rng.integers(1, 4))
        objs += [(kept_names[int(rng.integers(len(kept_names)))], None, None) for _ in range(n_oe)]
        if i == 3:
            objs.append(("train", None, None))  # "train" is NOT excluded
        for k, (name, polys, colour) in enumerate(objs):
            ann = {"id": img_id * 10 + k, "image_id": img_id, "category_id": cats[name]["id"], "iscrowd": 0}
            if i == 9 and k == len(objs) - 1:  # a crowd annotation (uncompressed RLE): a swarm of dots
                m = np.zeros((h, w), bool)
                for _ in range(12):
                    m |= R.ellipse_mask(h, w, rng.uniform(0.1, 0.5) * h, rng.uniform(0.2, 0.8) * w, 6, 6)
                ann.update(segmentation=uncompressed_rle(m), iscrowd=1)
                tex = R.flat(h, w, (240, 60, 200))
            else:
                if polys is None:
                    r = rng.uniform(0.12, 0.3) * min(h, w)
                    pts = radial_polygon(rng, rng.uniform(r, w - r), rng.uniform(r, h - r), r,
                                         int(rng.integers(5, 14)), rng.uniform(0.1, 0.7))
                    polys = [_round_poly(pts, h, w)]
                m = _poly_mask(polys, h, w)
                ann["segmentation"] = polys
                tex = oe_texture(rng, h, w) if colour is None else R.flat(h, w, colour) + R.grain(rng, h, w, 5)
            img = np.where(m[..., None], tex, img)
            ann["area"] = float(mask_utils.area(mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))))
            ann["bbox"] = _bbox(m)
            annotations.append(ann)
        names = {o[0] for o in objs}
        if names & set(COCO_EXCLUDED_NAMES):
            stats["excluded_category"] += 1
        elif small:
            stats["too_small"] += 1
        else:
            stats["kept"] += 1
            stats["kept_without_objects"] += int(not objs)
        fname = f"{img_id:012d}.jpg"
        wr.image(f"coco/train2017/{fname}", R.to_uint8(img))
        images.append({"id": img_id, "file_name": fname, "height": h, "width": w, "license": 0})
    wr.json("coco/annotations/instances_train2017.json", {
        "info": {"description": "oodbench synthetic COCO-format outlier source", "version": "1.0"},
        "licenses": [{"id": 0, "name": "synthetic, CC0"}],
        "images": images,
        "annotations": annotations,
        "categories": [{k: c[k] for k in ("id", "name", "supercategory")} for c in COCO_CATEGORIES],
    })
    return stats
