#!/usr/bin/env python3
# Provenance: verbatim copy of ../shared/fixtures/make_fixtures.py (project-provided fixture generator, seed 20240611) so the metric parity tests run without ../shared; only this comment line was added.
"""Deterministic generator of tiny fake anomaly-segmentation benchmarks for oodbench acceptance tests.

Usage::

    python make_fixtures.py OUTDIR            # writes the fixture tree under OUTDIR
    python make_fixtures.py OUTDIR --check expected.json   # regenerate and compare with the stored hashes
    python make_fixtures.py OUTDIR --seed 7 --check expected_seed7.json   # another seed, its own hashes

Everything is synthetic (no benchmark pixels are used).  Only numpy, Pillow and h5py are needed.
The directory layouts, file names and label encodings follow the official releases of
SMIYC (RoadAnomaly21 / RoadObstacle21), Fishyscapes Lost & Found (official zip + LAF images, and the
widely used preprocessed ``LostAndFound/{original,labels}`` copy), RoadAnomaly (Lis et al. 2019) and
StreetHazards test.  Two fake methods (``FixtureGood``, ``FixtureWeak``) get per-frame anomaly score
maps (float16 HDF5, dataset ``value``, gzip level 9, as written by the SMIYC evaluation wrapper) and,
for StreetHazards, closed-set class maps.

Determinism: each frame uses its own ``numpy.random.default_rng([seed, dataset, frame])``;
score maps are built with +, -, *, /, rounding and casts only (no transcendental functions), so the
decoded arrays are identical on every platform.  File bytes are identical for the same library
versions (PNG/JPEG/WebP/HDF5 encoders may differ between versions; ``--check`` compares decoded
arrays via ``content_sha256`` and reports byte-level differences separately).

Seeds: the default seed (``SEED``) reproduces the original fixture byte for byte, including its hand-picked
special frames (see ``Plan``).  Any other ``--seed`` changes all random content (images, anomaly blobs, score
noise) and also draws the structural choices (which frames carry the special components or lack anomalies,
where the special components sit, score grids / tie structure, outlier values) from ``default_rng([seed, 0])``.
File names, layouts, frame counts and label encodings are the same for every seed.

The only non-synthetic facts embedded here are public identifiers: the 100 AnomalyTrack test frame ids,
the 100 Lost & Found frame ids of Fishyscapes L&F validation and RoadAnomaly file-name style.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

SEED = 20240611  # default seed: the fixture behind expected.json
METHODS = ("FixtureGood", "FixtureWeak")

# ---------------------------------------------------------------------------------------------------
# Public identifiers
# ---------------------------------------------------------------------------------------------------

#: SMIYC AnomalyTrack (RoadAnomaly21) test frame ids: category name + 4-digit counter.
ANOMALY_TRACK_TEST_COUNTS = {
    "airplane": 2, "bear": 1, "boat_trailer": 5, "camel": 2, "caravan": 8, "carriage": 8,
    "cock": 1, "coffin": 1, "cones": 7, "cow": 14, "deer": 2, "donkey": 2, "elephant": 12,
    "goose": 1, "hay": 1, "horse": 5, "leopard": 1, "lion": 1, "piano": 1, "pig": 2,
    "rhino": 2, "scooter": 1, "sheep": 11, "tent": 1, "tractor": 6, "zebra": 2,
}

#: Fishyscapes L&F validation = these Lost & Found frames (scene -> (sequence, frame) pairs).
#: Listed in the order used to assign the Fishyscapes ``DDDD`` index (DDDD = position in this list).
FS_LAF_VAL_FIDS = """
13_Elly_Beinhorn_Str_000002_000090 01_Hanns_Klemm_Str_45_000011_000050 04_Maurener_Weg_8_000008_000190
04_Maurener_Weg_8_000001_000180 01_Hanns_Klemm_Str_45_000001_000240 01_Hanns_Klemm_Str_45_000001_000060
04_Maurener_Weg_8_000006_000100 01_Hanns_Klemm_Str_45_000004_000210 01_Hanns_Klemm_Str_45_000002_000070
04_Maurener_Weg_8_000001_000150 04_Maurener_Weg_8_000000_000180 04_Maurener_Weg_8_000003_000090
01_Hanns_Klemm_Str_45_000010_000050 13_Elly_Beinhorn_Str_000003_000140 04_Maurener_Weg_8_000007_000020
01_Hanns_Klemm_Str_45_000011_000230 04_Maurener_Weg_8_000001_000210 13_Elly_Beinhorn_Str_000001_000080
04_Maurener_Weg_8_000002_000060 13_Elly_Beinhorn_Str_000000_000050 01_Hanns_Klemm_Str_45_000010_000170
13_Elly_Beinhorn_Str_000000_000170 04_Maurener_Weg_8_000003_000030 04_Maurener_Weg_8_000006_000040
13_Elly_Beinhorn_Str_000003_000200 01_Hanns_Klemm_Str_45_000002_000190 04_Maurener_Weg_8_000007_000080
01_Hanns_Klemm_Str_45_000002_000220 01_Hanns_Klemm_Str_45_000009_000150 04_Maurener_Weg_8_000005_000050
04_Maurener_Weg_8_000005_000110 04_Maurener_Weg_8_000000_000150 13_Elly_Beinhorn_Str_000001_000200
13_Elly_Beinhorn_Str_000003_000260 01_Hanns_Klemm_Str_45_000001_000180 01_Hanns_Klemm_Str_45_000001_000210
13_Elly_Beinhorn_Str_000000_000230 01_Hanns_Klemm_Str_45_000004_000180 04_Maurener_Weg_8_000005_000200
01_Hanns_Klemm_Str_45_000012_000220 04_Maurener_Weg_8_000006_000130 04_Maurener_Weg_8_000004_000140
01_Hanns_Klemm_Str_45_000001_000120 01_Hanns_Klemm_Str_45_000008_000060 01_Hanns_Klemm_Str_45_000005_000140
04_Maurener_Weg_8_000004_000200 01_Hanns_Klemm_Str_45_000012_000250 01_Hanns_Klemm_Str_45_000003_000180
13_Elly_Beinhorn_Str_000000_000260 01_Hanns_Klemm_Str_45_000009_000090 01_Hanns_Klemm_Str_45_000000_000260
04_Maurener_Weg_8_000007_000170 01_Hanns_Klemm_Str_45_000003_000150 01_Hanns_Klemm_Str_45_000003_000030
04_Maurener_Weg_8_000005_000170 01_Hanns_Klemm_Str_45_000010_000110 13_Elly_Beinhorn_Str_000001_000230
01_Hanns_Klemm_Str_45_000003_000210 01_Hanns_Klemm_Str_45_000005_000200 01_Hanns_Klemm_Str_45_000004_000120
01_Hanns_Klemm_Str_45_000000_000230 01_Hanns_Klemm_Str_45_000011_000260 01_Hanns_Klemm_Str_45_000000_000140
13_Elly_Beinhorn_Str_000002_000120 13_Elly_Beinhorn_Str_000001_000140 01_Hanns_Klemm_Str_45_000010_000200
04_Maurener_Weg_8_000004_000020 13_Elly_Beinhorn_Str_000002_000030 01_Hanns_Klemm_Str_45_000012_000280
04_Maurener_Weg_8_000004_000080 01_Hanns_Klemm_Str_45_000002_000130 01_Hanns_Klemm_Str_45_000005_000230
04_Maurener_Weg_8_000008_000130 13_Elly_Beinhorn_Str_000000_000110 04_Maurener_Weg_8_000002_000150
04_Maurener_Weg_8_000000_000030 04_Maurener_Weg_8_000003_000120 01_Hanns_Klemm_Str_45_000005_000080
01_Hanns_Klemm_Str_45_000000_000080 04_Maurener_Weg_8_000001_000090 01_Hanns_Klemm_Str_45_000011_000170
04_Maurener_Weg_8_000001_000030 01_Hanns_Klemm_Str_45_000012_000160 04_Maurener_Weg_8_000008_000160
13_Elly_Beinhorn_Str_000000_000290 04_Maurener_Weg_8_000008_000100 04_Maurener_Weg_8_000004_000170
04_Maurener_Weg_8_000000_000090 01_Hanns_Klemm_Str_45_000008_000120 01_Hanns_Klemm_Str_45_000011_000200
01_Hanns_Klemm_Str_45_000011_000110 01_Hanns_Klemm_Str_45_000009_000210 01_Hanns_Klemm_Str_45_000008_000240
04_Maurener_Weg_8_000002_000120 01_Hanns_Klemm_Str_45_000003_000090 04_Maurener_Weg_8_000007_000140
01_Hanns_Klemm_Str_45_000000_000200 13_Elly_Beinhorn_Str_000003_000080 01_Hanns_Klemm_Str_45_000008_000180
04_Maurener_Weg_8_000008_000040
""".split()

#: Lost & Found scenes whose frames live in ``leftImg8bit/test`` (all others: ``leftImg8bit/train``).
LAF_TEST_SCENES = {"04_Maurener_Weg_8"}

#: FS L&F validation frame (by DDDD index) whose label has no anomaly pixel (as in the real data set);
#: default seed only (``Plan.fs_empty``).
FS_LAF_EMPTY_INDEX = 79

#: RoadAnomaly (Lis et al. 2019) names in the style of the real release; unknown names get a suffix.
ROAD_ANOMALY_KNOWN = {
    "animals01": "Guiguinto_railway_station_Calves", "animals02": "Zagori_On_the_road_to_Papigko",
    "animals03": "Zebras_in_the_road", "animals04": "17_animal_casualties_so_far_in_2006",
    "animals05": "cows_near_Phonsavan_Laos", "animals06": "sheep_roads_lambs",
    "animals07": "Aihole_Pattadakal", "animals08": "on_the_main_street_of_village_Lin_Albania",
    "animals09": "working_together", "animals10": "bovine_cattle_beside_road",
    "animals11": "Cock_Pheasant_on_Romford_Road", "animals12": "Collared_Peccary_crossing_the_road",
    "animals13": "jeune_bovin_sur_la_route", "animals14": "Dekemhare_Road",
    "animals15": "Doebeln_Pferdebahn", "animals16": "Donkeys_of_Morocco",
    "animals17": "E6_near_Kvaenangen", "animals18": "Goose_on_the_road_Memphis",
    "animals19": "Porte_de_Roubaix", "animals20": "Marcassin_Conchiglio",
    "animals21": "On_The_Road_to_Gondar_Ethiopia", "animals22": "red_fox_on_road",
    "animals23": "rhino_crossing_road", "animals24": "Sheep_Herders_Block_the_Road_Kaleybar_to_Eskanlu",
    "animals26": "Unnamed_Road_Kazakhstan", "animals27": "wildlife_bear",
    "animals29": "Zebra_Crossing_Abbey_Road_Style",
    "cones01": "Beeston_MMB_A6_Middle_Street", "cones02": "Broadmoor_Manhole_Cones",
    "cones03": "Bang_Na_Trat_Highway", "cones04": "Federation", "cones05": "Corner_of_Kingsley_Park",
    "cones06": "VnA_traffic_cones",
    "vehicle01": "man_carrying_dry_grass_on_bicycle", "vehicle02": "Broadmoor_Cones_Skidloader",
    "vehicle03": "Fuhrwerke_in_China",
}
ROAD_ANOMALY_COUNTS = {"animals": 34, "cones": 12, "vehicle": 14}  # 60 frames

#: StreetHazards raw label values (file values 1..14; the official code subtracts 1).
SH_UNLABELED, SH_BUILDING, SH_FENCE, SH_OTHER, SH_PEDESTRIAN, SH_POLE, SH_ROADLINE, SH_ROAD = range(1, 9)
SH_SIDEWALK, SH_VEGETATION, SH_CAR, SH_WALL, SH_SIGN, SH_ANOMALY = range(9, 15)
#: raw StreetHazards value -> DenseHybrid closed-set id (12 known classes 0..11); "other" and anomaly
#: have no closed-set id (DenseHybrid maps them to ignore 13 / anomaly 12).
SH_RAW_TO_DH = {1: 0, 2: 1, 3: 2, 5: 3, 6: 4, 7: 5, 8: 6, 9: 7, 10: 8, 11: 9, 12: 10, 13: 11}

#: ObstacleTrack frames outside the official ``ObstacleTrack-validation`` split (``exclude_prefix`` list).
OT_EXCLUDED = frozenset({19, 21, 22, 23, 24, 25, 26, 27, 28, 29})

# ---------------------------------------------------------------------------------------------------
# Seed-dependent structure
# ---------------------------------------------------------------------------------------------------

DATASETS = ("AnomalyTrack", "ObstacleTrack", "FishyscapesLAF", "RoadAnomaly", "StreetHazards")
GOOD_STEPS = (1.0 / 128, 1.0 / 256, 1.0 / 512)   # FixtureGood score grids a non-default seed picks from
WEAK_STEPS = (0.125, 0.25, 0.5)                  # FixtureWeak score grids
WEAK_OUTLIERS = (37.5, -120.0, 512.0, -64.0)     # FixtureWeak outlier values (all exact in float16)


@dataclass(frozen=True)
class Plan:
    """Structural choices of one seed.

    ``Plan()`` holds the hand-picked values of the default seed, so that fixture is unchanged.  For any other
    seed, ``Plan.for_seed`` draws every field from ``default_rng([seed, 0])`` (frame rngs use keys 1..6).
    A position of ``None`` means: put the special component at a random spot that keeps 3 px away from void,
    from the other anomalies and from the image border (so it stays one separate, intact component).
    """
    seed: int = SEED
    # AnomalyTrack validation frames (0..9)
    at_small_frame: int = 3                     # has a < 100 px GT component (SegEval turns it into void)
    at_small_centre: tuple | None = (70, 420)   # ellipse 4 x 6 px radii (73 px)
    at_diag_frame: int = 5                      # two 22 px squares touching at one corner (968 px, 8-connected)
    at_diag_corner: tuple | None = (150, 60)
    at_mid_frame: int = 7                       # a 100-500 px component: ellipse 9 x 12 px radii (331 px)
    at_mid_centre: tuple | None = (120, 460)
    at_miss_frame: int = 2                      # FixtureGood misses the right half of the largest anomaly
    ot_tiny_only: tuple = (2, 9)                # ObstacleTrack frames whose only obstacle is < 10 px
    fs_empty: int = FS_LAF_EMPTY_INDEX          # FS L&F DDDD index without anomaly pixels
    fs_weak_const: int = 7                      # FS L&F DDDD index where FixtureWeak is constant
    ra_tall: tuple = (11, 31, 51)               # RoadAnomaly frame indices of size 240x320 (others 180x320)
    sh_empty: int = 9                           # StreetHazards stem (0..13) without anomaly pixels
    good_step: dict = field(default_factory=lambda: {
        "AnomalyTrack": 1.0 / 256, "ObstacleTrack": 1.0 / 256, "FishyscapesLAF": 1.0 / 512,
        "RoadAnomaly": 1.0 / 256, "StreetHazards": 1.0 / 256})
    weak_step: dict = field(default_factory=lambda: {
        "AnomalyTrack": 0.25, "ObstacleTrack": 0.125, "FishyscapesLAF": 0.25,
        "RoadAnomaly": 0.5, "StreetHazards": 0.25})
    weak_outlier: dict = field(default_factory=lambda: {
        "AnomalyTrack": 37.5, "ObstacleTrack": -120.0, "FishyscapesLAF": 37.5,
        "RoadAnomaly": 512.0, "StreetHazards": -64.0})
    weak_block: int = 2                         # FixtureWeak fine noise is constant on blocks of this size

    @classmethod
    def for_seed(cls, seed: int) -> "Plan":
        if seed == SEED:
            return cls()
        r = np.random.default_rng([seed, 0])
        at = [int(x) for x in r.permutation(10)[:4]]
        ot_valid = [n for n in range(1, 41) if n not in OT_EXCLUDED]
        fs = [int(x) for x in r.choice(100, size=2, replace=False)]
        return cls(
            seed=seed,
            at_small_frame=at[0], at_small_centre=None, at_diag_frame=at[1], at_diag_corner=None,
            at_mid_frame=at[2], at_mid_centre=None, at_miss_frame=at[3],
            ot_tiny_only=tuple(sorted(int(x) for x in r.choice(ot_valid, size=2, replace=False))),
            fs_empty=fs[0], fs_weak_const=fs[1],
            ra_tall=tuple(sorted(int(x) for x in r.choice(60, size=3, replace=False))),
            sh_empty=int(r.integers(0, 14)),
            good_step={k: GOOD_STEPS[int(r.integers(0, len(GOOD_STEPS)))] for k in DATASETS},
            weak_step={k: WEAK_STEPS[int(r.integers(0, len(WEAK_STEPS)))] for k in DATASETS},
            weak_outlier={k: WEAK_OUTLIERS[int(r.integers(0, len(WEAK_OUTLIERS)))] for k in DATASETS},
            weak_block=int(r.integers(1, 5)),
        )

    def rng(self, *key: int) -> np.random.Generator:
        return frame_rng(*key, seed=self.seed)

    def describe(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

# ---------------------------------------------------------------------------------------------------
# Small deterministic image helpers (numpy only)
# ---------------------------------------------------------------------------------------------------


def frame_rng(*key: int, seed: int = SEED) -> np.random.Generator:
    return np.random.default_rng([seed, *key])


def stable_key(text: str) -> int:
    """Deterministic 32-bit key of a string (Python's ``hash`` is salted)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def grid(h: int, w: int):
    return np.mgrid[0:h, 0:w].astype(np.float64)


def ellipse(h: int, w: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    yy, xx = grid(h, w)
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def rect(h: int, w: int, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
    return m


def road_polygon(h: int, w: int, top: float, top_half: float, bottom_half: float) -> np.ndarray:
    """Trapezoid road region from row ``top`` to the bottom (fractions of the image size)."""
    yy, xx = grid(h, w)
    t = np.clip((yy - top * h) / max(h - top * h, 1.0), 0.0, 1.0)
    half = (top_half + (bottom_half - top_half) * t) * w
    return (yy >= top * h) & (np.abs(xx - w / 2.0) <= half)


def box_blur(x: np.ndarray, r: int) -> np.ndarray:
    """Mean filter with a (2r+1)^2 window (edge-replicated), via cumulative sums."""
    if r <= 0:
        return x.astype(np.float64)
    k = 2 * r + 1
    p = np.pad(x.astype(np.float64), r, mode="edge")
    c = np.cumsum(np.cumsum(np.pad(p, ((1, 0), (1, 0))), axis=0), axis=1)
    s = c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]
    return s / float(k * k)


def dilate(mask: np.ndarray, r: int) -> np.ndarray:
    return box_blur(mask.astype(np.float64), r) > 1e-9 if r > 0 else mask.copy()


def erode(mask: np.ndarray, r: int) -> np.ndarray:
    return ~dilate(~mask, r)


def smooth_field(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Low-frequency field in [0, 1]: a coarse uniform grid, bilinearly upsampled (exact arithmetic)."""
    gh, gw = h // cell + 2, w // cell + 2
    g = rng.random((gh, gw))
    ys = (np.arange(h) + 0.5) / cell
    xs = (np.arange(w) + 0.5) / cell
    y0 = np.floor(ys).astype(int)
    x0 = np.floor(xs).astype(int)
    fy = (ys - y0)[:, None]
    fx = (xs - x0)[None, :]
    a = g[y0][:, x0]
    b = g[y0][:, x0 + 1]
    c = g[y0 + 1][:, x0]
    d = g[y0 + 1][:, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def quantise(x: np.ndarray, step: float) -> np.ndarray:
    return np.round(x / step) * step


def shift(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(mask)
    h, w = mask.shape
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = mask[ys, xs]
    return out


def free_spot(rng: np.random.Generator, forbidden: np.ndarray, hh: int, ww: int, margin: int = 3) -> tuple[int, int]:
    """Random top-left corner of an ``hh`` x ``ww`` box that stays ``margin`` px away from ``forbidden``
    and from the image border."""
    H, W = hh + 2 * margin, ww + 2 * margin
    c = np.pad(np.cumsum(np.cumsum(forbidden.astype(np.int64), axis=0), axis=1), ((1, 0), (1, 0)))
    s = c[H:, W:] - c[:-H, W:] - c[H:, :-W] + c[:-H, :-W]  # forbidden pixels per window, indexed by its corner
    ys, xs = np.nonzero(s == 0)
    if ys.size == 0:
        raise RuntimeError(f"no free {hh}x{ww} spot")
    k = int(rng.integers(0, ys.size))
    return int(ys[k]) + margin, int(xs[k]) + margin


def render_rgb(rng: np.random.Generator, h: int, w: int, layers: list[tuple[np.ndarray, tuple]]) -> np.ndarray:
    """Synthetic RGB: vertical sky/ground gradient, then flat-coloured layers with soft shading."""
    yy, _ = grid(h, w)
    t = (yy / max(h - 1, 1))[..., None]
    img = (1 - t) * np.array([150.0, 180.0, 215.0]) + t * np.array([95.0, 100.0, 90.0])
    shade = smooth_field(rng, h, w, 32)[..., None]
    for mask, colour in layers:
        col = np.array(colour, float)[None, None, :] * (0.85 + 0.3 * shade)
        img = np.where(mask[..., None], col, img)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------
# Writers (return relative paths for the manifest)
# ---------------------------------------------------------------------------------------------------


class Writer:
    def __init__(self, root: Path):
        self.root = root
        self.labels: list[str] = []  # label / prediction / list files tracked in the manifest
        self.images: list[str] = []

    def _path(self, rel: str) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def label_png(self, rel: str, arr: np.ndarray) -> None:
        assert arr.dtype == np.uint8 and arr.ndim == 2
        Image.fromarray(arr, mode="L").save(self._path(rel), format="PNG", optimize=False, compress_level=9)
        self.labels.append(rel)

    def colour_png(self, rel: str, arr: np.ndarray) -> None:
        Image.fromarray(arr, mode="RGB").save(self._path(rel), format="PNG", compress_level=9)
        self.images.append(rel)

    def image(self, rel: str, arr: np.ndarray) -> None:
        p = self._path(rel)
        im = Image.fromarray(arr, mode="RGB")
        suffix = p.suffix.lower()
        if suffix == ".jpg":
            im.save(p, format="JPEG", quality=90, optimize=False, progressive=False, subsampling=0)
        elif suffix == ".webp":
            im.save(p, format="WEBP", quality=85, method=4)
        else:
            im.save(p, format="PNG", compress_level=6)
        self.images.append(rel)

    def scores(self, rel: str, arr: np.ndarray) -> None:
        value = np.ascontiguousarray(arr.astype(np.float16))
        assert np.all(np.isfinite(value)), rel
        with h5py.File(self._path(rel), "w", track_order=False) as f:
            f.create_dataset("value", data=value, compression="gzip", compression_opts=9, track_times=False)
        self.labels.append(rel)

    def json(self, rel: str, obj) -> None:
        self._path(rel).write_text(json.dumps(obj, indent=1) + "\n")
        self.labels.append(rel)


# ---------------------------------------------------------------------------------------------------
# Score map recipes
# ---------------------------------------------------------------------------------------------------


def good_scores(rng, gt: np.ndarray, fp_blobs: list[np.ndarray], miss: np.ndarray | None = None,
                step: float = 1.0 / 256) -> np.ndarray:
    """Scores in about [0.04, 0.96] on a 1/256 grid: strong response on ``gt``, false-positive blobs, ties."""
    h, w = gt.shape
    soft = box_blur(gt.astype(np.float64), 2)
    noise = smooth_field(rng, h, w, 12)
    s = 0.04 + 0.30 * noise + 0.62 * soft
    for blob in fp_blobs:
        s = np.where(blob, np.maximum(s, 0.62 + 0.3 * noise), s)
    if miss is not None:
        s = np.where(miss, 0.25 + 0.2 * noise, s)
    return quantise(s, step)


def weak_scores(rng, gt: np.ndarray, fp_blobs: list[np.ndarray], step: float = 0.25,
                outlier: float = 37.5, block: int = 2) -> np.ndarray:
    """Logit-like scores in about [-3, 5] quantised to ``step`` (many exact ties), weakly correlated."""
    h, w = gt.shape
    noise = smooth_field(rng, h, w, 8)
    b = block
    fine = np.kron(rng.random(((h + b - 1) // b, (w + b - 1) // b)), np.ones((b, b)))[:h, :w]  # b x b blocks
    near = dilate(shift(gt, 3, -4), 2)
    s = -3.0 + 4.5 * noise + 1.5 * fine + 1.8 * near
    for blob in fp_blobs:
        s = np.where(blob, s + 2.5, s)
    s = quantise(s, step)
    # a single extreme but finite (float16-safe) outlier pixel
    ys, xs = np.nonzero(~gt)
    k = int(rng.integers(0, ys.size))
    s[ys[k], xs[k]] = outlier
    return s


def blob_mask(rng, h, w, area: float, region: np.ndarray | None = None, aspect=(0.6, 1.6)) -> np.ndarray:
    """Ellipse of roughly ``area`` pixels whose centre lies inside ``region``."""
    ar = aspect[0] + (aspect[1] - aspect[0]) * rng.random()
    ry = np.sqrt(area / (np.pi * ar))
    rx = ry * ar
    if region is None:
        region = np.ones((h, w), bool)
    inner = region.copy()
    inner[: int(ry) + 1, :] = False
    inner[h - int(ry) - 1:, :] = False
    inner[:, : int(rx) + 1] = False
    inner[:, w - int(rx) - 1:] = False
    if not inner.any():
        inner = region if region.any() else np.ones((h, w), bool)
    ys, xs = np.nonzero(inner)
    k = int(rng.integers(0, ys.size))
    return ellipse(h, w, ys[k], xs[k], ry, rx)


# ---------------------------------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------------------------------


def colour_labels(label: np.ndarray, palette: dict) -> np.ndarray:
    out = np.zeros(label.shape + (3,), np.uint8)
    for k, c in palette.items():
        out[label == k] = c
    return out


SMIYC_PALETTE = {0: (128, 64, 128), 1: (255, 102, 0), 255: (0, 0, 0)}


def make_anomaly_track(wr: Writer, plan: Plan, h=256, w=512) -> dict:
    base = "dataset_AnomalyTrack"
    key = "AnomalyTrack"
    info = {}
    val_ids = [f"validation{i:04d}" for i in range(10)]
    for i, fid in enumerate(val_ids):
        rng = plan.rng(1, i)
        label = np.zeros((h, w), np.uint8)
        # void: an unknown background object and the ego-vehicle hood
        void = blob_mask(rng, h, w, 2500 + 1500 * rng.random(), rect(h, w, 40, 0, 110, w))
        void |= ellipse(h, w, h + 30, w / 2, 60, w * 0.45)
        label[void] = 255
        road = road_polygon(h, w, 0.45, 0.08, 0.5)
        anomalies = []
        n_anom = 1 + int(rng.integers(0, 3))
        for _ in range(n_anom):
            anomalies.append(blob_mask(rng, h, w, 1200 + 5200 * rng.random(), road & ~void))

        def spot(hh: int, ww: int, oy: int, ox: int) -> tuple[int, int]:
            """Non-default seeds: a random spot clear of void and of the anomalies so far (one separate component)."""
            y, x = free_spot(rng, void | np.logical_or.reduce(anomalies), hh, ww)
            return y + oy, x + ox

        if i == plan.at_small_frame:  # one small GT component (< 100 px) -> becomes void in SegEval
            cy, cx = plan.at_small_centre or spot(9, 13, 4, 6)
            anomalies.append(ellipse(h, w, cy, cx, 4, 6))  # 73 px, away from the others
        if i == plan.at_diag_frame:  # two squares touching only diagonally: one 8-connected component
            y0, x0 = plan.at_diag_corner or spot(44, 44, 0, 0)
            anomalies.append(rect(h, w, y0, x0, y0 + 22, x0 + 22) | rect(h, w, y0 + 22, x0 + 22, y0 + 44, x0 + 44))
        if i == plan.at_mid_frame:  # a 100-500 px component (kept as GT, but its prediction may fall under 500 px)
            cy, cx = plan.at_mid_centre or spot(19, 25, 9, 12)
            anomalies.append(ellipse(h, w, cy, cx, 9, 12))  # 331 px
        gt = np.zeros((h, w), bool)
        for a in anomalies:
            gt |= a
        gt &= ~void
        label[gt] = 1
        # void boundary ring around anomalies and a gap inside the largest one
        ring = dilate(gt, 2) & ~gt & (label == 0)
        if i % 2 == 0:
            label[ring] = 255
        big = max(anomalies, key=lambda m: int(m.sum()))
        cy, cx = np.argwhere(big).mean(axis=0)
        gap = ellipse(h, w, cy, cx, 3, 5) & gt
        label[gap] = 255
        gt = label == 1
        img = render_rgb(rng, h, w, [(road, (90, 90, 95)), (void, (60, 120, 60)), (gt, (170, 110, 70))])
        wr.image(f"{base}/images/{fid}.jpg", img)
        wr.label_png(f"{base}/labels_masks/{fid}_labels_semantic.png", label)
        wr.colour_png(f"{base}/labels_masks/{fid}_labels_semantic_color.png", colour_labels(label, SMIYC_PALETTE))
        # predictions
        fp_small = blob_mask(rng, h, w, 280, road & ~dilate(gt, 12))  # < 500 px: filtered out
        fp_big = blob_mask(rng, h, w, 1100, (label == 0) & ~dilate(gt, 15))  # kept: false positive
        miss = None
        if i == plan.at_miss_frame:  # the good method misses half of one anomaly
            miss = big & (grid(h, w)[1] > cx)
        preds = {
            "FixtureGood": good_scores(rng, gt, [fp_small, fp_big] if i % 3 == 0 else [fp_small], miss,
                                       step=plan.good_step[key]),
            "FixtureWeak": weak_scores(rng, gt, [fp_big], step=plan.weak_step[key], outlier=plan.weak_outlier[key],
                                       block=plan.weak_block),
        }
        for m, s in preds.items():
            wr.scores(f"anomaly_p/{m}/AnomalyTrack-all/{fid}.hdf5", s)
        info[fid] = {"anomaly_px": int(gt.sum()), "void_px": int((label == 255).sum())}
    # 100 unlabeled test frames
    test_ids = [f"{c}{k:04d}" for c, n in ANOMALY_TRACK_TEST_COUNTS.items() for k in range(n)]
    assert len(test_ids) == 100
    for j, fid in enumerate(sorted(test_ids)):
        rng = plan.rng(2, j)
        road = road_polygon(h, w, 0.45, 0.08, 0.5)
        obj = blob_mask(rng, h, w, 3000 + 6000 * rng.random(), road)
        wr.image(f"{base}/images/{fid}.jpg", render_rgb(rng, h, w, [(road, (90, 90, 95)), (obj, (150, 120, 80))]))
    return info


def make_obstacle_track(wr: Writer, plan: Plan, h=216, w=384) -> dict:
    base = "dataset_ObstacleTrack"
    key = "ObstacleTrack"
    info = {}
    excluded = OT_EXCLUDED  # official exclude_prefix list
    for n in range(1, 41):
        fid = f"validation_{n}"
        rng = plan.rng(3, n)
        road = road_polygon(h, w, 0.35 + 0.1 * rng.random(), 0.05, 0.42)
        label = np.full((h, w), 255, np.uint8)
        label[road] = 0
        interior = erode(road, 6)
        sizes = [(150, 700), (25, 45), (4, 8)]  # normal, < 50 px, < 10 px
        obstacles = []
        kinds = [0] + [int(k) for k in rng.choice(3, size=int(rng.integers(1, 3)), replace=True)]
        if n in plan.ot_tiny_only:
            kinds = [2]  # a frame whose only obstacle is below the 10 px GT threshold
        occupied = np.zeros((h, w), bool)
        for k in kinds:
            lo, hi = sizes[k]
            area = lo + (hi - lo) * rng.random()
            if k == 2:
                side = int(rng.integers(2, 4))
                ys, xs = np.nonzero(interior & ~dilate(occupied, 4))
                q = int(rng.integers(0, ys.size))
                m = rect(h, w, ys[q], xs[q], ys[q] + side, xs[q] + side)
            else:
                m = blob_mask(rng, h, w, area, interior & ~dilate(occupied, 6), aspect=(0.8, 1.8))
            m &= road & ~dilate(occupied, 2)
            obstacles.append(m)
            occupied |= m
        gt = occupied
        label[gt] = 1
        # unlabeled gap (void) inside the biggest obstacle
        big = max(obstacles, key=lambda m: int(m.sum()))
        if big.sum() > 200:
            label[erode(big, 4) & (grid(h, w)[0] % 5 == 0)] = 255
        gt = label == 1
        img = render_rgb(rng, h, w, [(road, (80, 80, 85)), (gt, (200, 60, 40))])
        wr.image(f"{base}/images/{fid}.webp", img)
        wr.label_png(f"{base}/labels_masks/{fid}_labels_semantic.png", label)
        wr.colour_png(f"{base}/labels_masks/{fid}_labels_semantic_color.png", colour_labels(label, SMIYC_PALETTE))
        on_road = (label == 0) & ~dilate(gt, 8)
        fp_tiny = blob_mask(rng, h, w, 30, erode(road, 8) & on_road)  # < 50 px: filtered out
        fp_kept = blob_mask(rng, h, w, 90, erode(road, 8) & on_road & ~dilate(fp_tiny, 8))
        offroad_high = ~road & (smooth_field(rng, h, w, 16) > 0.6)  # high scores in void: ignored
        good = good_scores(rng, dilate(gt, 1), [fp_tiny] + ([fp_kept] if n % 4 == 0 else []),
                           step=plan.good_step[key])
        good = np.where(offroad_high, 0.97, good)
        weak = weak_scores(rng, gt, [fp_kept, offroad_high], step=plan.weak_step[key],
                           outlier=plan.weak_outlier[key], block=plan.weak_block)
        wr.scores(f"anomaly_p/FixtureGood/ObstacleTrack-all/{fid}.hdf5", good)
        wr.scores(f"anomaly_p/FixtureWeak/ObstacleTrack-all/{fid}.hdf5", weak)
        info[fid] = {"in_validation_split": n not in excluded, "obstacle_px": int(gt.sum())}
    return info


def laf_scene(fid: str) -> str:
    return fid.rsplit("_", 2)[0]


def make_fishyscapes_laf(wr: Writer, plan: Plan, h=128, w=256) -> dict:
    key = "FishyscapesLAF"
    info = {}
    assert len(FS_LAF_VAL_FIDS) == 100 and len(set(FS_LAF_VAL_FIDS)) == 100
    for dddd, fid in enumerate(FS_LAF_VAL_FIDS):
        rng = plan.rng(4, dddd)
        scene = laf_scene(fid)
        split = "test" if scene in LAF_TEST_SCENES else "train"
        road = road_polygon(h, w, 0.5, 0.1, 0.48)
        label = np.full((h, w), 255, np.uint8)  # coarse labelling: void outside the labelled area
        label[road] = 0
        label[rect(h, w, int(0.3 * h), 0, int(0.5 * h), w) & (smooth_field(rng, h, w, 24) > 0.45)] = 0
        gt = np.zeros((h, w), bool)
        if dddd != plan.fs_empty:
            for _ in range(1 + int(rng.integers(0, 2))):
                gt |= blob_mask(rng, h, w, 40 + 400 * rng.random(), erode(road, 3) & ~dilate(gt, 4))
        label[gt] = 1
        label[dilate(gt, 1) & ~gt & road] = 255  # coarse void border around obstacles
        gt = label == 1
        img = render_rgb(rng, h, w, [(road, (85, 85, 90)), (gt, (40, 90, 160))])
        wr.image(f"dataset_LostAndFound/leftImg8bit/{split}/{scene}/{fid}_leftImg8bit.png", img)
        wr.label_png(f"fishyscapes_lostandfound/{dddd:04d}_{fid}_labels.png", label)
        wr.image(f"fishyscapes/LostAndFound/original/{fid}.png", img)
        wr.label_png(f"fishyscapes/LostAndFound/labels/{fid}.png", label)
        fp = blob_mask(rng, h, w, 100, erode(road, 3) & ~dilate(gt, 6))
        good = good_scores(rng, gt, [fp] if dddd % 2 else [], step=plan.good_step[key])
        weak = weak_scores(rng, gt, [fp], step=plan.weak_step[key], outlier=plan.weak_outlier[key],
                           block=plan.weak_block)
        if dddd == plan.fs_weak_const:  # a constant map: every pixel tied
            weak = np.full((h, w), 0.5)
        wr.scores(f"anomaly_p/FixtureGood/fishyscapes-laf-val/{fid}.hdf5", good)
        wr.scores(f"anomaly_p/FixtureWeak/fishyscapes-laf-val/{fid}.hdf5", weak)
        info[fid] = {"dddd": f"{dddd:04d}", "laf_split": split, "anomaly_px": int(gt.sum())}
    return info


def road_anomaly_names() -> list[str]:
    names = []
    for cat, n in ROAD_ANOMALY_COUNTS.items():
        for k in range(1, n + 1):
            key = f"{cat}{k:02d}"
            names.append(f"{key}_{ROAD_ANOMALY_KNOWN.get(key, 'fixture_frame')}")
    assert len(names) == 60
    return sorted(names)


def make_road_anomaly(wr: Writer, plan: Plan) -> dict:
    base = "RoadAnomaly_jpg"
    key = "RoadAnomaly"
    info = {}
    names = road_anomaly_names()
    wr.json(f"{base}/frame_list.json", [f"{n}.jpg" for n in names])
    for i, name in enumerate(names):
        rng = plan.rng(5, i)
        h, w = (240, 320) if i in plan.ra_tall else (180, 320)  # a few 4:3 frames among 16:9 ones
        road = road_polygon(h, w, 0.5 + 0.1 * rng.random(), 0.1, 0.55)
        label = np.zeros((h, w), np.uint8)
        label[road] = 1
        gt = np.zeros((h, w), bool)
        for _ in range(1 + int(rng.integers(0, 3))):
            gt |= blob_mask(rng, h, w, 600 + 5000 * rng.random(), road | rect(h, w, h // 3, 0, h, w))
        label[gt] = 2
        img = render_rgb(rng, h, w, [(road, (100, 95, 90)), (gt, (120, 80, 50))])
        wr.image(f"{base}/frames/{name}.jpg", img)
        wr.label_png(f"{base}/frames/{name}.labels/labels_semantic.png", label)
        wr.colour_png(f"{base}/frames/{name}.labels/labels_semantic_color.png",
                      colour_labels(label, {0: (0, 0, 0), 1: (128, 64, 128), 2: (255, 200, 0)}))
        fp = blob_mask(rng, h, w, 500, ~dilate(gt, 8))
        good = good_scores(rng, gt, [fp], step=plan.good_step[key])
        weak = weak_scores(rng, gt, [fp], step=plan.weak_step[key], outlier=plan.weak_outlier[key],
                           block=plan.weak_block)
        wr.scores(f"anomaly_p/FixtureGood/road-anomaly/{name}.hdf5", good)
        wr.scores(f"anomaly_p/FixtureWeak/road-anomaly/{name}.hdf5", weak)
        info[name] = {"shape": [h, w], "anomaly_px": int(gt.sum())}
    return info


def streethazards_scene(rng, h: int, w: int) -> np.ndarray:
    lab = np.full((h, w), SH_UNLABELED, np.uint8)
    yy, xx = grid(h, w)
    horizon = int(h * (0.4 + 0.1 * rng.random()))
    lab[(yy < horizon) & (smooth_field(rng, h, w, 40) > 0.5)] = SH_BUILDING
    lab[(yy < horizon) & (yy > horizon - 25) & (xx < w * 0.3)] = SH_VEGETATION
    lab[(yy >= horizon - 12) & (yy < horizon) & (xx > w * 0.7)] = SH_WALL
    lab[yy >= horizon] = SH_SIDEWALK
    road = road_polygon(h, w, horizon / h, 0.08, 0.45)
    lab[road] = SH_ROAD
    lab[road & (np.abs(xx - w / 2) < 2) & ((yy // 8) % 2 == 0)] = SH_ROADLINE
    lab[rect(h, w, horizon - 30, int(w * 0.85), horizon + 10, int(w * 0.85) + 3)] = SH_POLE
    lab[rect(h, w, horizon - 34, int(w * 0.85) - 4, horizon - 26, int(w * 0.85) + 7)] = SH_SIGN
    lab[rect(h, w, horizon - 6, int(w * 0.05), horizon + 6, int(w * 0.25))] = SH_FENCE
    car = blob_mask(rng, h, w, 900 + 600 * rng.random(), road, aspect=(1.8, 2.4))
    lab[car] = SH_CAR
    ped = rect(h, w, horizon + 5, int(w * 0.78), horizon + 30, int(w * 0.78) + 7)
    lab[ped] = SH_PEDESTRIAN
    other = blob_mask(rng, h, w, 350, (yy >= horizon) & ~road & ~ped, aspect=(1.0, 1.5))
    lab[other] = SH_OTHER
    return lab


SH_PALETTE = {1: (0, 0, 0), 2: (70, 70, 70), 3: (190, 153, 153), 4: (250, 170, 160), 5: (220, 20, 60),
              6: (153, 153, 153), 7: (157, 234, 50), 8: (128, 64, 128), 9: (244, 35, 232),
              10: (107, 142, 35), 11: (0, 0, 142), 12: (102, 102, 156), 13: (220, 220, 0), 14: (60, 250, 240)}


def make_streethazards(wr: Writer, plan: Plan, h=180, w=320) -> dict:
    base = "StreetHazards/test"
    key = "StreetHazards"
    info = {}
    lut = np.full(256, 0, np.uint8)
    for raw, dh in SH_RAW_TO_DH.items():
        lut[raw] = dh
    idx = 0
    for town in ("t5", "t6"):
        for k in range(7):
            stem = f"{idx:04d}"
            rng = plan.rng(6, idx)
            lab = streethazards_scene(rng, h, w)
            road = lab == SH_ROAD
            gt = np.zeros((h, w), bool)
            no_anomaly = idx == plan.sh_empty
            if not no_anomaly:
                for _ in range(1 + int(rng.integers(0, 2))):
                    gt |= blob_mask(rng, h, w, 250 + 1600 * rng.random(), road & ~dilate(gt, 4))
            lab[gt] = SH_ANOMALY
            img = render_rgb(rng, h, w, [(lab == c, SH_PALETTE[c]) for c in range(2, 15)])
            wr.image(f"{base}/images/test/{town}/{stem}.png", img)
            wr.label_png(f"{base}/annotations/test/{town}/{stem}.png", lab)
            # closed-set predictions (DenseHybrid ids 0..11)
            known = lut[lab]
            other = lab == SH_OTHER
            for m, n_err in (("FixtureGood", 2), ("FixtureWeak", 6)):
                pred = known.copy()
                pred[gt] = 9 if m == "FixtureGood" else 6  # anomalies look like car / road
                pred[other] = 1 if m == "FixtureGood" else 2
                if m == "FixtureWeak":  # boundaries shifted by a few pixels
                    pred = np.where(shift(np.ones((h, w), bool), 2, 3), np.roll(np.roll(pred, 2, 0), 3, 1), pred)
                for _ in range(n_err):
                    y0, x0 = int(rng.integers(0, h - 20)), int(rng.integers(0, w - 30))
                    pred[y0:y0 + int(rng.integers(8, 20)), x0:x0 + int(rng.integers(10, 30))] = int(rng.integers(0, 12))
                wr.label_png(f"semantic/{m}/streethazards-test/{stem}.png", pred.astype(np.uint8))
            fp = blob_mask(rng, h, w, 300, ~dilate(gt, 6))
            good = good_scores(rng, gt, [fp, other], step=plan.good_step[key])
            weak = weak_scores(rng, gt, [fp, lab == SH_PEDESTRIAN], step=plan.weak_step[key],
                               outlier=plan.weak_outlier[key], block=plan.weak_block)
            wr.scores(f"anomaly_p/FixtureGood/streethazards-test/{stem}.hdf5", good)
            wr.scores(f"anomaly_p/FixtureWeak/streethazards-test/{stem}.hdf5", weak)
            info[stem] = {"town": town, "anomaly_px": int(gt.sum()), "other_px": int(other.sum())}
            idx += 1
    return info


# ---------------------------------------------------------------------------------------------------
# Manifest / check
# ---------------------------------------------------------------------------------------------------


def content_sha256(path: Path) -> str:
    """Hash of the decoded content (robust to encoder versions): dtype, shape and raw array bytes."""
    suffix = path.suffix.lower()
    if suffix == ".hdf5":
        with h5py.File(path, "r") as f:
            arr = f["value"][()]
    elif suffix == ".png":
        arr = np.asarray(Image.open(path))
    else:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    h = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def manifest(root: Path, rels: list[str]) -> dict:
    return {
        rel: {"sha256": hashlib.sha256((root / rel).read_bytes()).hexdigest(),
              "content_sha256": content_sha256(root / rel)}
        for rel in sorted(rels)
    }


def generate(out: Path, plan: Plan | None = None) -> tuple[Writer, dict]:
    plan = plan or Plan()
    wr = Writer(out)
    info = {
        "AnomalyTrack": make_anomaly_track(wr, plan),
        "ObstacleTrack": make_obstacle_track(wr, plan),
        "FishyscapesLAF": make_fishyscapes_laf(wr, plan),
        "RoadAnomaly": make_road_anomaly(wr, plan),
        "StreetHazards": make_streethazards(wr, plan),
    }
    return wr, info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--seed", type=int, default=SEED,
                    help=f"non-negative integer seed (default {SEED}: the fixture behind expected.json)")
    ap.add_argument("--check", type=Path, default=None,
                    help="expected JSON (of the same seed) whose 'fixture_manifest' the regenerated files must match")
    ap.add_argument("--write-manifest", type=Path, default=None, help="write the manifest JSON here")
    args = ap.parse_args(argv)
    if args.seed < 0:
        ap.error("--seed must be >= 0")
    plan = Plan.for_seed(args.seed)
    t0 = time.time()
    wr, info = generate(args.outdir, plan)
    man = manifest(args.outdir, wr.labels)
    total = sum(p.stat().st_size for p in args.outdir.rglob("*") if p.is_file())
    print(f"wrote {len(wr.labels)} label/prediction files and {len(wr.images)} images "
          f"({total / 1e6:.1f} MB) to {args.outdir} in {time.time() - t0:.1f} s (seed {plan.seed})")
    if args.write_manifest:
        doc = {"fixture_manifest": man, "frames": info}
        if plan.seed != SEED:  # (the default seed's dump keeps its original form)
            doc.update(seed=plan.seed, plan=plan.describe())
        args.write_manifest.write_text(json.dumps(doc, indent=1) + "\n")
    if args.check:
        ref_doc = json.loads(args.check.read_text())
        ref = ref_doc["fixture_manifest"]
        ref_seed = re.search(r"seed (\d+)", ref_doc.get("generator", ""))
        if ref_seed and int(ref_seed.group(1)) != plan.seed:
            print(f"note: {args.check} was generated with seed {ref_seed.group(1)}, this run used seed {plan.seed}")
        missing = sorted(set(ref) - set(man))
        extra = sorted(set(man) - set(ref))
        content_bad = sorted(k for k in set(ref) & set(man) if ref[k]["content_sha256"] != man[k]["content_sha256"])
        bytes_bad = sorted(k for k in set(ref) & set(man) if ref[k]["sha256"] != man[k]["sha256"])
        print(f"check: {len(ref)} reference files, missing {len(missing)}, extra {len(extra)}, "
              f"content mismatches {len(content_bad)}, byte mismatches {len(bytes_bad)}")
        for k in (missing + extra + content_bad)[:20]:
            print("  MISMATCH", k)
        if missing or extra or content_bad:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
