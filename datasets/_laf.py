"""Lost & Found file naming shared by the SMIYC LostAndFound-noKnown and Fishyscapes L&F adapters.

Layout (Cityscapes style, ``SegmentMeIfYouCan/road-anomaly-benchmark:road_anomaly_benchmark/datasets/tracks.py``,
``DatasetLostAndFound``): ``dataset_LostAndFound/leftImg8bit/{train,test}/<NN>_<scene>/<fid>_leftImg8bit.<ext>``
and ``dataset_LostAndFound/gtCoarse/{train,test}/<NN>_<scene>/<fid>_gtCoarse_labelIds.png``, with
``fid = <NN>_<scene>_<seq:6>_<frame:6>``. The image extension is the first of png, webp, jpg that
exists (the official rule). The frame id is the image stem without ``_leftImg8bit``.
"""
from __future__ import annotations

import re
from pathlib import Path

__all__ = [
    "LAF_DIR",
    "LAF_IMAGE_EXTS",
    "LAF_IMAGE_SUFFIX",
    "RE_LAF_ID",
    "laf_image_path",
    "laf_label_path",
    "laf_scene_folder",
]

LAF_DIR = "dataset_LostAndFound"
LAF_IMAGE_SUFFIX = "_leftImg8bit"
LAF_IMAGE_EXTS = ("png", "webp", "jpg")
#: ``<NN>_<scene name>_<sequence:6>_<frame:6>``, e.g. ``04_Maurener_Weg_8_000000_000030``.
RE_LAF_ID = re.compile(r"^([0-9]{2})_(.+)_([0-9]{6})_([0-9]{6})$")


def laf_scene_folder(fid: str) -> str | None:
    """``<NN>_<scene>`` folder of a LAF frame id, or ``None`` when ``fid`` is not a LAF id."""
    m = RE_LAF_ID.match(fid)
    return f"{m.group(1)}_{m.group(2)}" if m else None


def laf_image_path(root: Path, split: str, fid: str, ext: str = "png") -> Path:
    """``<root>/dataset_LostAndFound/leftImg8bit/<split>/<NN_scene>/<fid>_leftImg8bit.<ext>``."""
    return root / LAF_DIR / "leftImg8bit" / split / str(laf_scene_folder(fid)) / f"{fid}{LAF_IMAGE_SUFFIX}.{ext}"


def laf_label_path(root: Path, split: str, fid: str) -> Path:
    """``<root>/dataset_LostAndFound/gtCoarse/<split>/<NN_scene>/<fid>_gtCoarse_labelIds.png``."""
    return root / LAF_DIR / "gtCoarse" / split / str(laf_scene_folder(fid)) / f"{fid}_gtCoarse_labelIds.png"
