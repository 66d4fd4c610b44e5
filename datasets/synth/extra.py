"""Synthetic extra training sets in their official layouts: Mapillary Vistas (v1.2 / v2.0) and
WildDash 2 (``oodbench synth --extra vistas-v1.2,vistas-v2.0,wilddash2``).

Each set holds, per split, a *class chart* (a grid of cells, one per class id of the official
config, so every id's mapping is exercised) and re-encodings of the Cityscapes-format frames
(:func:`.training.cityscapes_scene`): the same scene painted with the dataset's own class names.
Their Cityscapes train ids must therefore equal the Cityscapes tree's ``labelTrainIds`` of the same
frame pixel for pixel -- a check independent of the mapping tables.  The manifest records which
file is the chart and which Cityscapes stem each frame re-encodes.

Layouts written:

* Vistas, only ``vistas-v1.2`` asked: the v1.2 release (``vistas/config.json``,
  ``vistas/{training,validation}/{images/<key>.jpg, labels/<key>.png}``);
  with ``vistas-v2.0``: the v2.0 release (``config_v1.2.json``, ``config_v2.0.json``,
  ``{split}/images``, ``{split}/v1.2/labels`` when v1.2 is asked too, ``{split}/v2.0/labels``).
  Labels are 8-bit palette PNGs whose indices are the class ids; keys are 22-character ids as in
  the release.  Class names and order follow the official configs; the colours and "readable"
  strings of the synthetic configs are ours (the reader uses only the names).
* WildDash 2: ``wd_public_02/{images/<name>.jpg, panoptic.json, panoptic/<name>.png}``, COCO
  panoptic (segment id = R + 256 G + 256^2 B, ids above 65535 on purpose so all three channels
  matter), the 81 categories of the WildDash 2 unified label policy
  (``ozendelait/wilddash_scripts:wd2_unified_label_policy.json``, ids 0..80).
"""
from __future__ import annotations

import numpy as np

from oodbench.errors import UsageError

from . import render as R
from .training import cityscapes_scene
from .world import (ANOMALY, BUILDING, CAR, EGO, FENCE, LANE, PERSON, POLE, ROAD, SIDEWALK, SIGN, SKY, STATIC,
                    TERRAIN, VEGETATION, WALL)
from .writers import TreeWriter

__all__ = ["EXTRA_SETS", "VISTAS_V12_NAMES", "VISTAS_V20_NAMES", "WD2_CATEGORIES", "parse_extra",
           "write_extra"]

#: names accepted by ``--extra``
EXTRA_SETS = ("vistas-v1.2", "vistas-v2.0", "wilddash2")

KEY_VISTAS, KEY_WD2 = 201, 202

#: Mapillary Vistas v1.2 class names in id order (``config.json`` / ``config_v1.2.json``, 66 classes)
VISTAS_V12_NAMES: tuple[str, ...] = (
    "animal--bird", "animal--ground-animal", "construction--barrier--curb", "construction--barrier--fence",
    "construction--barrier--guard-rail", "construction--barrier--other-barrier", "construction--barrier--wall",
    "construction--flat--bike-lane", "construction--flat--crosswalk-plain", "construction--flat--curb-cut",
    "construction--flat--parking", "construction--flat--pedestrian-area", "construction--flat--rail-track",
    "construction--flat--road", "construction--flat--service-lane", "construction--flat--sidewalk",
    "construction--structure--bridge", "construction--structure--building", "construction--structure--tunnel",
    "human--person", "human--rider--bicyclist", "human--rider--motorcyclist", "human--rider--other-rider",
    "marking--crosswalk-zebra", "marking--general", "nature--mountain", "nature--sand", "nature--sky",
    "nature--snow", "nature--terrain", "nature--vegetation", "nature--water", "object--banner", "object--bench",
    "object--bike-rack", "object--billboard", "object--catch-basin", "object--cctv-camera",
    "object--fire-hydrant", "object--junction-box", "object--mailbox", "object--manhole", "object--phone-booth",
    "object--pothole", "object--street-light", "object--support--pole", "object--support--traffic-sign-frame",
    "object--support--utility-pole", "object--traffic-light", "object--traffic-sign--back",
    "object--traffic-sign--front", "object--trash-can", "object--vehicle--bicycle", "object--vehicle--boat",
    "object--vehicle--bus", "object--vehicle--car", "object--vehicle--caravan", "object--vehicle--motorcycle",
    "object--vehicle--on-rails", "object--vehicle--other-vehicle", "object--vehicle--trailer",
    "object--vehicle--truck", "object--vehicle--wheeled-slow", "void--car-mount", "void--ego-vehicle",
    "void--unlabeled",
)

#: Mapillary Vistas v2.0 class names in id order (``config_v2.0.json``, 124 classes)
VISTAS_V20_NAMES: tuple[str, ...] = (
    "animal--bird", "animal--ground-animal", "construction--barrier--ambiguous",
    "construction--barrier--concrete-block", "construction--barrier--curb", "construction--barrier--fence",
    "construction--barrier--guard-rail", "construction--barrier--other-barrier",
    "construction--barrier--road-median", "construction--barrier--road-side", "construction--barrier--separator",
    "construction--barrier--temporary", "construction--barrier--wall", "construction--flat--bike-lane",
    "construction--flat--crosswalk-plain", "construction--flat--curb-cut", "construction--flat--driveway",
    "construction--flat--parking", "construction--flat--parking-aisle", "construction--flat--pedestrian-area",
    "construction--flat--rail-track", "construction--flat--road", "construction--flat--road-shoulder",
    "construction--flat--service-lane", "construction--flat--sidewalk", "construction--flat--traffic-island",
    "construction--structure--bridge", "construction--structure--building", "construction--structure--garage",
    "construction--structure--tunnel", "human--person--individual", "human--person--person-group",
    "human--rider--bicyclist", "human--rider--motorcyclist", "human--rider--other-rider",
    "marking--continuous--dashed", "marking--continuous--solid", "marking--continuous--zigzag",
    "marking--discrete--ambiguous", "marking--discrete--arrow--left", "marking--discrete--arrow--other",
    "marking--discrete--arrow--right", "marking--discrete--arrow--split-left-or-straight",
    "marking--discrete--arrow--split-right-or-straight", "marking--discrete--arrow--straight",
    "marking--discrete--crosswalk-zebra", "marking--discrete--give-way-row", "marking--discrete--give-way-single",
    "marking--discrete--hatched--chevron", "marking--discrete--hatched--diagonal",
    "marking--discrete--other-marking", "marking--discrete--stop-line", "marking--discrete--symbol--bicycle",
    "marking--discrete--symbol--other", "marking--discrete--text", "marking-only--continuous--dashed",
    "marking-only--discrete--crosswalk-zebra", "marking-only--discrete--other-marking",
    "marking-only--discrete--text", "nature--mountain", "nature--sand", "nature--sky", "nature--snow",
    "nature--terrain", "nature--vegetation", "nature--water", "object--banner", "object--bench",
    "object--bike-rack", "object--catch-basin", "object--cctv-camera", "object--fire-hydrant",
    "object--junction-box", "object--mailbox", "object--manhole", "object--parking-meter", "object--phone-booth",
    "object--pothole", "object--sign--advertisement", "object--sign--ambiguous", "object--sign--back",
    "object--sign--information", "object--sign--other", "object--sign--store", "object--street-light",
    "object--support--pole", "object--support--pole-group", "object--support--traffic-sign-frame",
    "object--support--utility-pole", "object--traffic-cone", "object--traffic-light--general-single",
    "object--traffic-light--pedestrians", "object--traffic-light--general-upright",
    "object--traffic-light--general-horizontal", "object--traffic-light--cyclists",
    "object--traffic-light--other", "object--traffic-sign--ambiguous", "object--traffic-sign--back",
    "object--traffic-sign--direction-back", "object--traffic-sign--direction-front",
    "object--traffic-sign--front", "object--traffic-sign--information-parking",
    "object--traffic-sign--temporary-back", "object--traffic-sign--temporary-front", "object--trash-can",
    "object--vehicle--bicycle", "object--vehicle--boat", "object--vehicle--bus", "object--vehicle--car",
    "object--vehicle--caravan", "object--vehicle--motorcycle", "object--vehicle--on-rails",
    "object--vehicle--other-vehicle", "object--vehicle--trailer", "object--vehicle--truck",
    "object--vehicle--vehicle-group", "object--vehicle--wheeled-slow", "object--water-valve", "void--car-mount",
    "void--dynamic", "void--ego-vehicle", "void--ground", "void--static", "void--unlabeled",
)

_THINGS = ("egovehicle pole trafficlight trafficsign person rider car truck bus caravan trailer onrails motorcycle "
           "bicycle pickup van billboard streetlight junctionbox mailbox manhole phonebooth bikerack "
           "trafficsignframe utilitypole motorcyclist bicyclist otherrider bird groundanimal trafficsignany "
           "trafficsignback trashcan othervehicle autorickshaw bench wheeledslow boat banner firehydrant "
           "cctvcamera catchbasin crosswalkplain crosswalkzebra manholesidewalk").split()

#: WildDash 2 categories ``(id, name, isthing)``, ids 0..80 in the unified label policy's order
WD2_CATEGORIES: tuple[tuple[int, str, bool], ...] = tuple(
    (i, n, n in _THINGS) for i, n in enumerate((
        "unlabeled egovehicle overlay outofroi static dynamic ground road sidewalk parking railtrack building wall "
        "fence guardrail bridge tunnel pole polegroup trafficlight trafficsign vegetation terrain sky person rider "
        "car truck bus caravan trailer onrails motorcycle bicycle pickup van billboard streetlight roadmarking "
        "junctionbox mailbox manhole phonebooth pothole bikerack trafficsignframe utilitypole motorcyclist bicyclist "
        "otherrider bird groundanimal curb trafficsignany trafficsignback trashcan otherbarrier othervehicle "
        "autorickshaw bench mountain tramtrack wheeledslow boat bikelane bikelanesidewalk banner dashcammount water "
        "sand pedestrianarea firehydrant cctvcamera snow catchbasin crosswalkplain crosswalkzebra manholesidewalk "
        "curbterrain servicelane curbcut").split()))

# internal world class -> class name in each dataset (anomalies never occur in training frames)
_WORLD = {
    "v1.2": {SKY: "nature--sky", BUILDING: "construction--structure--building", WALL: "construction--barrier--wall",
             FENCE: "construction--barrier--fence", POLE: "object--support--pole", SIGN: "object--traffic-sign--front",
             VEGETATION: "nature--vegetation", TERRAIN: "nature--terrain", SIDEWALK: "construction--flat--sidewalk",
             ROAD: "construction--flat--road", LANE: "marking--general", PERSON: "human--person",
             CAR: "object--vehicle--car", EGO: "void--ego-vehicle", STATIC: "object--junction-box"},
    "wilddash2": {SKY: "sky", BUILDING: "building", WALL: "wall", FENCE: "fence", POLE: "pole", SIGN: "trafficsign",
                  VEGETATION: "vegetation", TERRAIN: "terrain", SIDEWALK: "sidewalk", ROAD: "road",
                  LANE: "roadmarking", PERSON: "person", CAR: "car", EGO: "egovehicle", STATIC: "billboard"},
}
_WORLD["v2.0"] = {**_WORLD["v1.2"], LANE: "marking--continuous--dashed", PERSON: "human--person--individual"}

_KEY_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def parse_extra(text: str | None) -> tuple[str, ...]:
    """``"vistas-v2.0,wilddash2"`` -> sorted names; unknown names raise ``ValueError``."""
    if not text:
        return ()
    names = {t.strip() for t in text.split(",") if t.strip()}
    bad = sorted(names - set(EXTRA_SETS))
    if bad:
        raise UsageError(f"--extra: unknown set(s) {', '.join(bad)}; choose from {', '.join(EXTRA_SETS)}")
    return tuple(sorted(names))


def _colours(n: int, salt: int) -> np.ndarray:
    """Distinct deterministic RGB colours (golden-ratio hue walk)."""
    i = np.arange(n, dtype=np.float64)
    h = (i * 0.618033988749895 + salt * 0.1) % 1.0
    rgb = 0.5 + 0.4 * np.cos(2 * np.pi * (h[:, None] + np.array([0.0, 1 / 3, 2 / 3])))
    return np.round(rgb * 255).astype(np.uint8)


def _chart(ids: list[int], fill: int, size: tuple[int, int], cols: int = 16) -> np.ndarray:
    """A grid of ``cols`` columns, one cell per id (row-major), leftover cells ``fill``."""
    h, w = size
    rows = -(-len(ids) // cols)
    cells = np.full(rows * cols, fill, np.int64)
    cells[: len(ids)] = ids
    yy = np.minimum(np.arange(h) * rows // h, rows - 1)
    xx = np.minimum(np.arange(w) * cols // w, cols - 1)
    return cells.reshape(rows, cols)[yy[:, None], xx[None, :]]


def _key(seed: int, split: str, i: int) -> str:
    rng = np.random.default_rng([seed, KEY_VISTAS, 0 if split == "training" else 1, i])
    return "".join(_KEY_CHARS[k] for k in rng.integers(0, len(_KEY_CHARS), 22))


def _scene_frames(seed: int, split: str, n: int, size: tuple[int, int]):
    """``(cityscapes stem, image uint8, world class map)`` of the first ``n`` frames of ``split``."""
    for i in range(n):
        stem, _city, sc = cityscapes_scene(seed, "train" if split == "training" else "val", i, size)
        if (sc.cls == ANOMALY).any():  # pragma: no cover - the training world has no anomalies
            raise AssertionError("anomaly class in a training scene")
        yield stem, R.to_uint8(sc.image), sc.cls


def _lut(world: dict[int, str], names: list[str]) -> np.ndarray:
    idx = {n: i for i, n in enumerate(names)}
    lut = np.full(256, 255, np.int64)
    for wid, name in world.items():
        lut[wid] = idx[name]
    return lut


def write_vistas(wr: TreeWriter, seed: int, size: tuple[int, int], versions: tuple[str, ...],
                 n_frames: dict[str, int]) -> dict:
    """Write the synthetic Vistas tree for ``versions`` (``"v1.2"``/``"v2.0"``); return its manifest entry."""
    names = {"v1.2": list(VISTAS_V12_NAMES), "v2.0": list(VISTAS_V20_NAMES)}
    release_v20 = "v2.0" in versions
    info: dict = {"root": "vistas", "layout": "v2.0 release" if release_v20 else "v1.2 release",
                  "versions": list(versions)}
    for k, v in enumerate(versions):
        cfg = "config_" + v + ".json" if release_v20 else "config.json"
        cols = _colours(len(names[v]), k)
        wr.json(f"vistas/{cfg}", {
            "labels": [{"color": [int(c) for c in cols[i]], "instances": False, "readable": n.split("--")[-1],
                        "name": n, "evaluate": True} for i, n in enumerate(names[v])],
            "version": v[1:], "folder_structure": "{split}/{content}/{key:.{22}}.{ext}",
        })
    for split, n in n_frames.items():
        frames: dict[str, str] = {}
        chart_key = _key(seed, split, 0)
        frames[chart_key] = "chart"
        charts = {v: _chart(list(range(len(names[v]))), len(names[v]) - 1, size) for v in versions}
        wr.image(f"vistas/{split}/images/{chart_key}.jpg", _colours(len(names[versions[0]]), 0)[charts[versions[0]]])
        labels = {chart_key: charts}
        for i, (stem, img, cls) in enumerate(_scene_frames(seed, split, n, size), start=1):
            key = _key(seed, split, i)
            frames[key] = stem
            wr.image(f"vistas/{split}/images/{key}.jpg", img)
            labels[key] = {v: _lut(_WORLD[v], names[v])[cls] for v in versions}
        for key, per_version in labels.items():
            for k, v in enumerate(versions):
                folder = f"vistas/{split}/{v}/labels" if release_v20 else f"vistas/{split}/labels"
                wr.palette_label(f"{folder}/{key}.png", per_version[v].astype(np.uint8), _colours(len(names[v]), k))
        info[split] = dict(sorted(frames.items()))
    return info


def _segment_id(cat_id: int) -> int:
    return 70001 + 2731 * int(cat_id)  # > 65535: the blue channel carries information


def write_wilddash2(wr: TreeWriter, seed: int, size: tuple[int, int], n: int) -> dict:
    """Write the synthetic WildDash 2 tree; return its manifest entry."""
    by_name = {name: cid for cid, name, _ in WD2_CATEGORIES}
    world = {w: by_name[name] for w, name in _WORLD["wilddash2"].items()}
    cat_lut = np.full(256, -1, np.int64)
    cat_lut[list(world)] = list(world.values())
    cats = [c[0] for c in WD2_CATEGORIES]
    frames: dict[str, str] = {}
    images, annotations = [], []
    chart = _chart([*cats, -1], -1, size)  # -1: a void cell (segment id 0)
    todo = [("chart", _colours(len(cats) + 1, 5)[chart], chart)]
    todo += [(stem, img, cat_lut[cls]) for stem, img, cls in _scene_frames(seed, "training", n, size)]
    for i, (src, img, cat_map) in enumerate(todo):
        name = f"sy{i:04d}_{100000 + 7 * i}"
        frames[name] = src
        seg = np.where(cat_map >= 0, _segment_id(0) + 2731 * cat_map, 0)
        rgb = np.stack([seg % 256, seg // 256 % 256, seg // 65536], axis=-1).astype(np.uint8)
        wr.image(f"wd_public_02/images/{name}.jpg", np.asarray(img, np.uint8))
        wr.image(f"wd_public_02/panoptic/{name}.png", rgb)
        img_id = 5000 + 13 * i
        h, w = cat_map.shape
        images.append({"id": img_id, "file_name": f"{name}.jpg", "height": h, "width": w})
        segs = []
        for cid in sorted(int(c) for c in np.unique(cat_map) if c >= 0):
            m = cat_map == cid
            ys, xs = np.nonzero(m)
            segs.append({"id": _segment_id(cid), "category_id": cid, "iscrowd": 0, "area": int(m.sum()),
                         "bbox": [int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1]})
        annotations.append({"image_id": img_id, "file_name": f"{name}.png", "segments_info": segs})
    cols = _colours(len(WD2_CATEGORIES), 7)
    wr.json("wd_public_02/panoptic.json", {
        "info": {"description": "oodbench synthetic WildDash 2 (COCO panoptic)"},
        "images": images, "annotations": annotations,
        "categories": [{"id": cid, "name": name, "isthing": int(thing), "supercategory": "synthetic",
                        "color": [int(c) for c in cols[cid]]} for cid, name, thing in WD2_CATEGORIES],
    })
    return {"root": "wd_public_02", "frames": frames}


def write_extra(wr: TreeWriter, seed: int, size: tuple[int, int], sets: tuple[str, ...],
                n_training: int = 3, n_validation: int = 2) -> dict:
    """Write the requested extra sets (:data:`EXTRA_SETS`); return ``{set name: manifest entry}``.

    ``n_training`` / ``n_validation`` scene frames per split come on top of the class chart; they
    re-encode Cityscapes-format train / val frames ``0..n-1`` (which must exist in the tree).
    """
    out: dict = {}
    versions = tuple(v for v in ("v1.2", "v2.0") if f"vistas-{v}" in sets)
    if versions:
        out["vistas"] = write_vistas(wr, seed, size, versions, {"training": n_training, "validation": n_validation})
    if "wilddash2" in sets:
        out["wilddash2"] = write_wilddash2(wr, seed, size, n_training)
    return out
