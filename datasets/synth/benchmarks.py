"""Evaluation splits of the synthetic benchmark, each in its official on-disk layout
(``docs/benchmarks.md`` §1; layouts identical to ``tests/fixtures_gen/make_fixtures.py``).

Every writer returns ``{split name: frame count}`` after the official exclusions, plus the ids
present on disk that the official split rules exclude, so adapters can be tested against both.
"""
from __future__ import annotations

import numpy as np

from oodbench.errors import UsageError

from ..smiyc import OBSTACLE_VAL_EXCLUDED_PREFIXES
from . import render as R
from .anomalies import add_anomalies
from .scene import make_scene
from .training import CityscapesFrame
from .world import (ANOMALY, CS_TRAIN_ID_LUT, EGO, LANE, OBSTACLE_EXCLUDED_VAL, OBSTACLE_TEST_SCENES, ROAD,
                    SH_RAW_LUT, SMIYC_ANOMALY_TEST_IDS, STATIC)
from .writers import TreeWriter

__all__ = [
    "write_anomaly_track",
    "write_obstacle_track",
    "obstacle_val_numbers",
    "write_lost_and_found",
    "write_fishyscapes_static",
    "write_road_anomaly",
    "write_streethazards",
    "LAF_FRAMES",
    "SMIYC_PALETTE",
]

SMIYC_PALETTE = np.zeros((256, 3), np.uint8)
SMIYC_PALETTE[0], SMIYC_PALETTE[1] = (128, 64, 128), (255, 102, 0)

KEY_AT_VAL, KEY_AT_TEST, KEY_OT, KEY_LAF, KEY_FS_STATIC, KEY_RA, KEY_SH = 201, 202, 203, 204, 205, 206, 207


def _anomaly_track_label(cls: np.ndarray) -> np.ndarray:
    label = np.zeros(cls.shape, np.uint8)
    label[np.isin(cls, (STATIC, EGO))] = 255  # void: unknown objects and the ego vehicle
    label[cls == ANOMALY] = 1
    return label


def _ensure(rng, sc, n, **kw) -> np.ndarray:
    m = add_anomalies(rng, sc, n, **kw)
    for _ in range(50):  # every frame that should have an anomaly gets at least one
        if (sc.cls == ANOMALY).any():
            return m
        m |= add_anomalies(rng, sc, 1, **kw)
    raise RuntimeError("synthetic scene without room for an anomaly (generator bug)")


def write_anomaly_track(wr: TreeWriter, seed: int, size: tuple[int, int], n_val: int) -> dict:
    """``dataset_AnomalyTrack/{images/<fid>.jpg, labels_masks/<fid>_labels_semantic{,_color}.png}``."""
    h, w = size
    base = "dataset_AnomalyTrack"
    frames = [(f"validation{i:04d}", None, True, i) for i in range(n_val)]
    frames += [(fid, kind, False, k) for k, (fid, kind) in enumerate(sorted(SMIYC_ANOMALY_TEST_IDS.items()))]
    for fid, kind, labelled, j in frames:  # keyed per frame: more validation frames leave the others alone
        rng = np.random.default_rng([seed, KEY_AT_VAL if labelled else KEY_AT_TEST, j])
        sc = make_scene(rng, h, w, traffic=rng.uniform(0.2, 1.0), statics=int(rng.integers(1, 3)),
                        ego=bool(rng.random() < 0.5))
        kinds = (kind,) if kind else ("animal", "cones", "box", "crate", "debris")
        _ensure(rng, sc, int(rng.integers(1, 3)), mode="anywhere", kinds=kinds, scale=1.5, min_px=8, min_frac=0.12)
        wr.image(f"{base}/images/{fid}.jpg", R.to_uint8(sc.image))
        if labelled:
            label = _anomaly_track_label(sc.cls)
            wr.label(f"{base}/labels_masks/{fid}_labels_semantic.png", label)
            wr.image(f"{base}/labels_masks/{fid}_labels_semantic_color.png", SMIYC_PALETTE[label])
    return {"counts": {"smiyc-anomaly-val": n_val, "smiyc-anomaly-test": len(SMIYC_ANOMALY_TEST_IDS)},
            "excluded_on_disk": {}}


def _obstacle_scene(rng, h, w, road_style: str, n_obstacles: int):
    sc = make_scene(rng, h, w, road_style=road_style, traffic=0.2, persons=0.3, low_camera=True,
                    curve=None, ego=False)
    # min_frac: at 144x256 an obstacle below ~10 px is under two cells of a stride-8 model (a real
    # 1080p far obstacle scaled down 7.5x); such objects measure the resolution, not the method
    _ensure(rng, sc, n_obstacles, mode="on_road", kinds=("box", "crate", "debris", "cones", "animal"),
            scale=0.6, min_px=3, min_frac=0.07)
    return sc


def obstacle_val_numbers(n_val: int) -> list[int]:
    """The ``N`` of the first ``n_val`` ids ``validation_N`` (``N = 1, 2, ...``) that the official
    ObstacleTrack-validation rule keeps (it drops ids starting with ``validation_19`` or
    ``validation_21`` ... ``validation_29``, :data:`~oodbench.datasets.smiyc.OBSTACLE_VAL_EXCLUDED_PREFIXES`):
    1..18, 20, 30, 31, ...  With ``n_val = 30`` these are the 30 labelled frames of the release."""
    if n_val < 0:
        raise UsageError(f"n_val must be >= 0, got {n_val}")
    out, n = [], 0
    while len(out) < n_val:
        n += 1
        if not f"validation_{n}".startswith(OBSTACLE_VAL_EXCLUDED_PREFIXES):
            out.append(n)
    return out


def write_obstacle_track(wr: TreeWriter, seed: int, size: tuple[int, int], n_val: int) -> dict:
    """``dataset_ObstacleTrack/{images/<fid>.webp, labels_masks/<fid>_labels_semantic{,_color}.png}``.

    Validation: ``n_val`` frames numbered as in the release (:func:`obstacle_val_numbers`) plus the
    officially excluded ``validation_19/21/25`` (labelled, on disk, outside the split); each frame's
    randomness is keyed by its number, so a larger ``n_val`` adds frames without changing the others.
    Test ids ``<scene>_<NNNNNN>`` with hidden labels, including a ``snowstorm1`` and a ``driveway``
    (night) frame that the test split excludes.
    """
    h, w = size
    base = "dataset_ObstacleTrack"
    kept = obstacle_val_numbers(n_val)
    test = [(f"{scene}_{1:06d}", style) for scene, style in OBSTACLE_TEST_SCENES.items()]
    for n in kept + list(OBSTACLE_EXCLUDED_VAL):
        fid = f"validation_{n}"
        rng = np.random.default_rng([seed, KEY_OT, n])
        sc = _obstacle_scene(rng, h, w, "asphalt", int(rng.integers(1, 4)))
        label = np.full((h, w), 255, np.uint8)  # everything off the road is void
        label[np.isin(sc.cls, (ROAD, LANE))] = 0
        label[sc.cls == ANOMALY] = 1
        wr.image(f"{base}/images/{fid}.webp", R.to_uint8(sc.image))
        wr.label(f"{base}/labels_masks/{fid}_labels_semantic.png", label)
        wr.image(f"{base}/labels_masks/{fid}_labels_semantic_color.png", SMIYC_PALETTE[label])
    for j, (fid, style) in enumerate(test):
        rng = np.random.default_rng([seed, KEY_OT, 1000 + j])
        sc = _obstacle_scene(rng, h, w, style, int(rng.integers(1, 3)))
        img = sc.image
        if fid.startswith("snowstorm"):
            img = img * 0.8 + 60 + 120 * (rng.random((h, w, 1)) < 0.03)
        elif fid.startswith("driveway"):
            img = img * 0.3
        wr.image(f"{base}/images/{fid}.webp", R.to_uint8(img))
    out_test = [fid for fid, _ in test if fid.split("_")[0] in ("snowstorm1", "snowstorm2", "driveway")]
    return {"counts": {"smiyc-obstacle-val": n_val, "smiyc-obstacle-test": len(test) - len(out_test)},
            "excluded_on_disk": {"smiyc-obstacle-val": [f"validation_{n}" for n in OBSTACLE_EXCLUDED_VAL],
                                 "smiyc-obstacle-test": out_test}}


#: Lost & Found frames written: (LAF split, scene, sequence, frame).  Real scene names; the
#: ``15_Rechbergstr_Deckenpfronn`` and ``10_Schlossberg_9_000004`` frames exercise the
#: testNoKnown exclusions; fewer than 18 test frames, so none of the official *positional*
#: exclusions (indices 17, 37, ... of the 1203 sorted test frames) applies.
LAF_FRAMES = (
    ("train", "01_Hanns_Klemm_Str_45", 0, 80), ("train", "01_Hanns_Klemm_Str_45", 2, 190),
    ("train", "01_Hanns_Klemm_Str_45", 9, 150), ("train", "13_Elly_Beinhorn_Str", 0, 50),
    ("train", "13_Elly_Beinhorn_Str", 1, 140), ("train", "13_Elly_Beinhorn_Str", 3, 200),
    ("test", "02_Hanns_Klemm_Str_44", 0, 30), ("test", "02_Hanns_Klemm_Str_44", 1, 60),
    ("test", "02_Hanns_Klemm_Str_44", 4, 120), ("test", "04_Maurener_Weg_8", 0, 30),
    ("test", "04_Maurener_Weg_8", 1, 150), ("test", "04_Maurener_Weg_8", 8, 190),
    ("test", "10_Schlossberg_9", 1, 70), ("test", "10_Schlossberg_9", 4, 40),
    ("test", "15_Rechbergstr_Deckenpfronn", 0, 90), ("test", "15_Rechbergstr_Deckenpfronn", 2, 210),
)
_NOKNOWN_DROP = ("15_Rechbergstr_Deckenpfronn", "01_Hanns_Klemm_Str_45_000006", "01_Hanns_Klemm_Str_45_000007",
                 "10_Schlossberg_9_000004")
#: Fishyscapes L&F validation = these LAF frames, in DDDD order (deliberately not sorted by id)
FS_LAF_ORDER = (11, 3, 0, 9, 5, 1, 4, 10)


def write_lost_and_found(wr: TreeWriter, seed: int, size: tuple[int, int]) -> dict:
    """Lost & Found (``dataset_LostAndFound/{leftImg8bit,gtCoarse}/{train,test}/<NN_scene>/``) and the
    Fishyscapes L&F label zip content (``fishyscapes_lostandfound/DDDD_<lafid>_labels.png``).

    gtCoarse label ids: 0 ignore (off-road and a coarse margin around obstacles), 1 free road,
    2..200 obstacle ids.  FS L&F labels: 0 in-distribution (road), 1 anomaly, 255 void.
    """
    h, w = size
    fids = []
    fs_labels = {}
    for j, (split, scene, seq, frame) in enumerate(LAF_FRAMES):
        rng = np.random.default_rng([seed, KEY_LAF, j])
        fid = f"{scene}_{seq:06d}_{frame:06d}"
        sc = _obstacle_scene(rng, h, w, "grey" if "Hanns" in scene else "asphalt", int(rng.integers(1, 3)))
        road = np.isin(sc.cls, (ROAD, LANE))
        obst = sc.cls == ANOMALY
        gt = np.zeros((h, w), np.uint8)
        gt[road] = 1
        gt[R.dilate(obst, 1) & road] = 0  # coarse labelling leaves a margin unlabelled
        ids = rng.integers(2, 44, size=3)
        # distinct obstacle ids by connected column bands (several objects get several ids)
        band = np.minimum((np.arange(w) * 3) // w, 2)
        gt[obst] = ids[np.broadcast_to(band, (h, w))][obst]
        wr.image(f"dataset_LostAndFound/leftImg8bit/{split}/{scene}/{fid}_leftImg8bit.png", R.to_uint8(sc.image))
        wr.label(f"dataset_LostAndFound/gtCoarse/{split}/{scene}/{fid}_gtCoarse_labelIds.png", gt)
        fs = np.full((h, w), 255, np.uint8)
        fs[gt == 1] = 0
        fs[gt >= 2] = 1
        fs_labels[j] = (fid, fs)
        if split == "test":
            fids.append(fid)
    for dddd, j in enumerate(FS_LAF_ORDER):
        fid, fs = fs_labels[j]
        wr.label(f"fishyscapes_lostandfound/{dddd:04d}_{fid}_labels.png", fs)
    dropped = sorted(f for f in fids if f.startswith(_NOKNOWN_DROP))
    return {"counts": {"fishyscapes-laf-val": len(FS_LAF_ORDER), "smiyc-laf-noknown": len(fids) - len(dropped)},
            "excluded_on_disk": {"smiyc-laf-noknown": dropped}}


def write_fishyscapes_static(wr: TreeWriter, seed: int, val_frames: list[CityscapesFrame], n: int) -> dict:
    """``fs_val_v3/DDDD_<csid>_labels.png`` and ``DDDD_<csid>_rgb.npz`` (key ``rgb``: int16 overlay).

    The adapter rebuilds the image as ``clip(cityscapes_val + overlay, 0, 255)``; labels are 1 on the
    pasted objects, 255 on Cityscapes-ignored pixels, 0 elsewhere.  DDDD order is shuffled.
    """
    if n > len(val_frames):
        raise UsageError(f"fishyscapes-static-val needs {n} Cityscapes val frames, only {len(val_frames)} generated")
    order = np.random.default_rng([seed, KEY_FS_STATIC]).permutation(len(val_frames))[:n]
    for dddd, j in enumerate(order):
        fr = val_frames[int(j)]
        rng = np.random.default_rng([seed, KEY_FS_STATIC, int(j)])
        sc = fr.scene
        sc.image = fr.image.astype(np.float64)
        sc.cls = fr.cls.copy()
        _ensure(rng, sc, int(rng.integers(1, 3)), mode="anywhere", scale=1.3, min_px=6, min_frac=0.08)
        pasted = R.to_uint8(sc.image)
        overlay = pasted.astype(np.int16) - fr.image.astype(np.int16)
        label = np.where(CS_TRAIN_ID_LUT[fr.cls] == 255, 255, 0).astype(np.uint8)
        label[sc.cls == ANOMALY] = 1
        wr.label(f"fs_val_v3/{dddd:04d}_{fr.stem}_labels.png", label)
        wr.npz(f"fs_val_v3/{dddd:04d}_{fr.stem}_rgb.npz", rgb=overlay)
    return {"counts": {"fishyscapes-static-val": n}, "excluded_on_disk": {}}


RA_NAMES = ("animals01_synthetic_cows_on_road", "animals02_synthetic_zebra_crossing", "animals03_synthetic_sheep",
            "cones01_synthetic_roadworks", "cones02_synthetic_lane_closure", "vehicle01_synthetic_crate_cart",
            "vehicle02_synthetic_trailer", "debris01_synthetic_spilled_load")
_RA_KIND = {"animals": "animal", "cones": "cones", "vehicle": "crate", "debris": "debris"}


def write_road_anomaly(wr: TreeWriter, seed: int, size: tuple[int, int]) -> dict:
    """``RoadAnomaly_jpg/{frame_list.json, frames/<name>.jpg, frames/<name>.labels/labels_semantic.png}``
    (0 background, 1 road, 2 anomaly; no void).  One frame is 4:3 as in the real mixed-size release."""
    h, w = size
    base = "RoadAnomaly_jpg"
    names = sorted(RA_NAMES)
    wr.json(f"{base}/frame_list.json", [f"{n}.jpg" for n in names])
    colours = np.zeros((256, 3), np.uint8)
    colours[1], colours[2] = (128, 64, 128), (255, 200, 0)
    for j, name in enumerate(names):
        rng = np.random.default_rng([seed, KEY_RA, j])
        fh = int(round(w * 3 / 4)) if j == 3 else h
        sc = make_scene(rng, fh, w, traffic=0.3, persons=0.3, statics=int(rng.integers(0, 2)))
        kind = _RA_KIND[name.split("_")[0].rstrip("0123456789")]
        _ensure(rng, sc, int(rng.integers(1, 3)), mode="large", kinds=(kind,), min_px=10)
        label = np.zeros((fh, w), np.uint8)
        label[np.isin(sc.cls, (ROAD, LANE))] = 1
        label[sc.cls == ANOMALY] = 2
        wr.image(f"{base}/frames/{name}.jpg", R.to_uint8(sc.image))
        wr.label(f"{base}/frames/{name}.labels/labels_semantic.png", label)
        wr.image(f"{base}/frames/{name}.labels/labels_semantic_color.png", colours[label])
    return {"counts": {"road-anomaly": len(names)}, "excluded_on_disk": {}}


def write_streethazards(wr: TreeWriter, seed: int, size: tuple[int, int], per_town: int) -> dict:
    """``StreetHazards/test/{images,annotations}/test/{t5,t6}/<NNNN>.png`` (raw 1..14; 14 anomaly,
    4 "other"); CARLA-like flat rendering, a different palette per town, stems unique across towns.
    The last frame of ``t6`` has no anomaly (the official per-image mean skips such frames)."""
    h, w = size
    idx = 0
    for town in ("t5", "t6"):
        for k in range(per_town):
            rng = np.random.default_rng([seed, KEY_SH, idx])
            sc = make_scene(rng, h, w, style=town, traffic=rng.uniform(0.5, 1.5), statics=int(rng.integers(1, 3)),
                            ego=False)
            if not (town == "t6" and k == per_town - 1):
                _ensure(rng, sc, int(rng.integers(1, 3)), mode="anywhere", scale=1.5, min_px=6, min_frac=0.08)
            stem = f"{idx:04d}"
            wr.image(f"StreetHazards/test/images/test/{town}/{stem}.png", R.to_uint8(sc.image))
            wr.label(f"StreetHazards/test/annotations/test/{town}/{stem}.png", SH_RAW_LUT[sc.cls])
            idx += 1
    return {"counts": {"streethazards-test": idx}, "excluded_on_disk": {}}
