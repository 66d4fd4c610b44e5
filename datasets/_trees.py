"""Writers of tiny data trees in the official on-disk layouts (for tests and bug reports).

Each writer creates only what one split needs, with a few-pixel image per frame and a label that
holds every raw value of the benchmark's encoding, so a test can check the exact mapping. This is
not the synthetic benchmark (:mod:`oodbench.datasets.synth`); it only reproduces file *layouts*.
Every file is written atomically (:mod:`oodbench.atomic`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from oodbench.atomic import atomic_path, atomic_write_text

from ._laf import laf_image_path, laf_label_path
from .smiyc import LAF_NOKNOWN_EXCLUDED_PREFIXES

__all__ = [
    "H",
    "W",
    "anomaly_track",
    "fishyscapes_laf_official",
    "fishyscapes_preprocessed",
    "fishyscapes_static_official",
    "laf_noknown_ids",
    "lost_and_found_test",
    "obstacle_track",
    "raw_label",
    "road_anomaly_official",
    "road_anomaly_preprocessed",
    "streethazards_test",
    "write_image",
    "write_label",
]

H, W = 4, 6  # every written frame is H x W


def write_image(path: Path, seed: int = 0, size: tuple[int, int] = (H, W)) -> np.ndarray:
    """Write a deterministic RGB image (format from the suffix); return the array written."""
    rgb = np.random.default_rng(seed).integers(0, 256, size=(*size, 3), dtype=np.uint8)
    fmt = {".jpg": "JPEG", ".webp": "WEBP", ".png": "PNG"}[path.suffix.lower()]
    opts = {"quality": 100, "subsampling": 0} if fmt == "JPEG" else {"lossless": True} if fmt == "WEBP" else {}
    with atomic_path(path) as tmp:
        Image.fromarray(rgb, mode="RGB").save(tmp, format=fmt, **opts)
    return rgb


def write_label(path: Path, values: np.ndarray) -> np.ndarray:
    """Write a single-channel 8-bit label PNG."""
    arr = np.asarray(values, dtype=np.uint8)
    with atomic_path(path) as tmp:
        Image.fromarray(arr, mode="L").save(tmp, format="PNG")
    return arr


def raw_label(values: Sequence[int], size: tuple[int, int] = (H, W)) -> np.ndarray:
    """A label map cycling through ``values`` (row-major), so each value occurs."""
    n = size[0] * size[1]
    return np.resize(np.asarray(values, dtype=np.uint8), n).reshape(size)


SMIYC_RAW = (0, 1, 255, 0, 1, 7)          # 7 -> 255 by the official mapping
LAF_RAW = (0, 1, 2, 37, 200, 201, 1, 0)   # -> 255, 0, 1, 1, 1, 255, 0, 255
FS_RAW = (0, 1, 255)
RA_RAW = (0, 1, 2)
SH_RAW = tuple(range(1, 15))


def anomaly_track(root: Path, val: int = 10, test: Iterable[str] = ("cow0000",)) -> list[str]:
    """``dataset_AnomalyTrack/images/*.jpg`` + validation labels and ``*_color.png`` decoys."""
    base = root / "dataset_AnomalyTrack"
    ids = [f"validation{i:04d}" for i in range(val)]
    for k, fid in enumerate(ids):
        write_image(base / "images" / f"{fid}.jpg", k)
        write_label(base / "labels_masks" / f"{fid}_labels_semantic.png", raw_label(SMIYC_RAW))
        write_image(base / "labels_masks" / f"{fid}_labels_semantic_color.png", k)
    for k, fid in enumerate(test):
        write_image(base / "images" / f"{fid}.jpg", 1000 + k)
    return ids


def obstacle_track(root: Path, val: Iterable[int] = range(1, 41),
                   test: dict[str, int] | None = None) -> None:
    """``dataset_ObstacleTrack/images/*.webp``: ``validation_N`` (labelled) and test scenes."""
    base = root / "dataset_ObstacleTrack"
    for n in val:
        write_image(base / "images" / f"validation_{n}.webp", n)
        write_label(base / "labels_masks" / f"validation_{n}_labels_semantic.png", raw_label(SMIYC_RAW))
    for scene, count in (test or {}).items():
        for k in range(count):
            write_image(base / "images" / f"{scene}_{k:03d}.webp", 5000 + k)


def laf_noknown_ids() -> list[str]:
    """1203 LAF test ids whose official noKnown filtering leaves exactly 1043 frames.

    The 150 frames of excluded sequences sort first; 7 of them sit at the deleted positions
    (17, 37, ..., 129), so 143 are removed by prefix, 17 by position: 1203 - 17 - 143 = 1043.
    """
    ids = []
    for i in range(150):
        prefix = LAF_NOKNOWN_EXCLUDED_PREFIXES[i % 4]
        ids.append(f"{prefix}_{i:06d}_{i:06d}" if prefix.startswith("15_") else f"{prefix}_{i:06d}")
    ids += [f"20_Normal_Str_{k // 100:06d}_{k % 100:06d}" for k in range(1053)]
    return sorted(ids)


def lost_and_found_test(root: Path, fids: Iterable[str], labels: bool = True, ext: str = "png") -> None:
    """LAF ``leftImg8bit/test`` images (and ``gtCoarse`` labelIds) for ``fids``."""
    for k, fid in enumerate(fids):
        write_image(laf_image_path(root, "test", fid, ext), k)
        if labels:
            write_label(laf_label_path(root, "test", fid), raw_label(LAF_RAW))


def fishyscapes_laf_official(root: Path, lafids: Sequence[str], splits: Sequence[str] | None = None) -> None:
    """``fishyscapes_lostandfound/DDDD_<lafid>_labels.png`` + the LAF images (``train`` by default)."""
    for dddd, lafid in enumerate(lafids):
        split = splits[dddd] if splits else "train"
        write_image(laf_image_path(root, split, lafid), dddd)
        write_label(root / "fishyscapes_lostandfound" / f"{dddd:04d}_{lafid}_labels.png", raw_label(FS_RAW))


def fishyscapes_preprocessed(root: Path, which: str, names: Sequence[str]) -> None:
    """``fishyscapes/<which>/{original,labels}/<name>.png``."""
    for k, name in enumerate(names):
        write_image(root / "fishyscapes" / which / "original" / f"{name}.png", k)
        write_label(root / "fishyscapes" / which / "labels" / f"{name}.png", raw_label(FS_RAW))


def fishyscapes_static_official(root: Path, csids: Sequence[str], folder: str = "fs_val_v3") -> None:
    """``<folder>/DDDD_<csid>_{labels.png,rgb.npz}`` + Cityscapes ``leftImg8bit/val`` images."""
    for dddd, csid in enumerate(csids):
        city = csid.split("_")[0]
        write_image(root / "cityscapes" / "leftImg8bit" / "val" / city / f"{csid}_leftImg8bit.png", dddd)
        write_label(root / folder / f"{dddd:04d}_{csid}_labels.png", raw_label(FS_RAW))
        overlay = np.resize(np.array([-300, -5, 0, 7, 300], dtype=np.int16), H * W * 3).reshape(H, W, 3)
        with atomic_path(root / folder / f"{dddd:04d}_{csid}_rgb.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, rgb=overlay)


def road_anomaly_official(root: Path, names: Sequence[str]) -> None:
    """``RoadAnomaly_jpg/frame_list.json``, ``frames/<name>.jpg``, ``frames/<name>.labels/labels_semantic.png``."""
    base = root / "RoadAnomaly_jpg"
    atomic_write_text(base / "frame_list.json", json.dumps([f"{n}.jpg" for n in names]))
    for k, name in enumerate(names):
        write_image(base / "frames" / f"{name}.jpg", k)
        write_label(base / "frames" / f"{name}.labels" / "labels_semantic.png", raw_label(RA_RAW))


def road_anomaly_preprocessed(root: Path, names: Sequence[str]) -> None:
    """``road_anomaly/original/<name>.jpg`` and ``road_anomaly/labels/<name>.png`` (0/1)."""
    for k, name in enumerate(names):
        write_image(root / "road_anomaly" / "original" / f"{name}.jpg", k)
        write_label(root / "road_anomaly" / "labels" / f"{name}.png", raw_label((0, 1)))


def streethazards_test(root: Path, per_town: int = 2) -> list[str]:
    """``StreetHazards/test/{images,annotations}/test/{t5,t6}/NNNN.png`` with raw labels 1..14."""
    base = root / "StreetHazards" / "test"
    stems = []
    for t, town in enumerate(("t5", "t6")):
        for k in range(per_town):
            stem = f"{t * per_town + k:04d}"
            write_image(base / "images" / "test" / town / f"{stem}.png", t * 100 + k)
            write_label(base / "annotations" / "test" / town / f"{stem}.png", raw_label(SH_RAW))
            stems.append(stem)
    return stems
