"""WildDash 2 as extra closed-set training data in Cityscapes train ids.

Official layout (the public release ``wd_public_02.zip``, COCO panoptic format)::

    <wd_public_02>/images/<name>.jpg
    <wd_public_02>/panoptic.json          images[], annotations[] (file_name, image_id,
                                          segments_info[] {id, category_id, ...}), categories[]
    <wd_public_02>/panoptic/<name>.png    RGB-encoded segment ids: id = R + 256 G + 256^2 B

A pixel's class is the ``category_id`` of its segment; segment id 0 and ids absent from
``segments_info`` are void (COCO panoptic convention) and map to 255.

Category -> Cityscapes mapping: the dataset authors' own *unified label policy*,
``ozendelait/wilddash_scripts:wd2_unified_label_policy.json`` (``wd2_name`` -> ``cs_name``, the
table ``remap_coco.py`` uses to convert WildDash 2 into Cityscapes categories), transcribed in
:data:`WD2_TO_CITYSCAPES`; the Cityscapes label name then gives the train id through
``cityscapesscripts`` (so ``parking``, ``guard rail``, ``static``, ``dynamic``, ``ego vehicle`` ...
become 255 exactly as in Cityscapes).  Choices this implies, stated because other codebases differ:

* ``van`` -> car (13) and ``pickup`` -> **truck** (14), as in the policy; the DenseHybrid-family
  Mask2Former mappers send pickup to car instead.  We follow the dataset authors.
* ``roadmarking``, ``manhole``, ``pothole``, ``catchbasin``, crosswalks, bike lane, tram track,
  service lane and (per the policy) ``pedestrianarea`` -> road; ``curb``, ``curbcut``,
  ``bikelanesidewalk``, ``manholesidewalk`` -> sidewalk; ``curbterrain`` -> terrain;
  ``trafficsignframe`` and ``utilitypole`` -> pole; ``otherbarrier`` -> wall; motorcyclist,
  bicyclist, other rider -> rider; ``autorickshaw`` -> motorcycle; ``onrails`` -> train (16:
  the policy's Cityscapes name "on rails" is cityscapesscripts' "train").
* ``billboard``, ``streetlight``, other street furniture, animals, water, sand, snow, mountain,
  other / slow vehicles, boats, banners, ego vehicle, dash-cam mount -> 255.

Names are compared after normalisation (lower case, a trailing ``(...)`` dropped, spaces /
hyphens / underscores removed), so ``"ego vehicle"``, ``"Ego-Vehicle"`` and ``"egovehicle"`` agree;
unknown category names map to 255.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Iterator

import numpy as np

from oodbench.errors import UsageError

from ._io import check_same_size, read_image
from ._rescale import rescale_short_side
from .base import DataLayoutError
from .vistas import cityscapes_train_id

__all__ = ["WD2_TO_CITYSCAPES", "WildDash2", "find_wilddash2_root", "normalise_category_name",
           "panoptic_rgb_to_id", "wd2_train_id_lut"]

#: normalised WildDash 2 category name -> Cityscapes label name (the authors' unified label policy)
WD2_TO_CITYSCAPES: dict[str, str] = {
    "unlabeled": "unlabeled", "egovehicle": "ego vehicle", "overlay": "rectification border",
    "outofroi": "out of roi", "static": "static", "dynamic": "dynamic", "ground": "ground",
    "road": "road", "sidewalk": "sidewalk", "parking": "parking", "railtrack": "rail track",
    "building": "building", "wall": "wall", "fence": "fence", "guardrail": "guard rail", "bridge": "bridge",
    "tunnel": "tunnel", "pole": "pole", "polegroup": "polegroup", "trafficlight": "traffic light",
    "trafficsign": "traffic sign", "vegetation": "vegetation", "terrain": "terrain", "sky": "sky",
    "person": "person", "rider": "rider", "car": "car", "truck": "truck", "bus": "bus", "caravan": "caravan",
    "trailer": "trailer", "onrails": "train", "motorcycle": "motorcycle", "bicycle": "bicycle",
    "pickup": "truck", "van": "car", "billboard": "static", "streetlight": "static", "roadmarking": "road",
    "junctionbox": "static", "mailbox": "static", "manhole": "road", "phonebooth": "static", "pothole": "road",
    "bikerack": "static", "trafficsignframe": "pole", "utilitypole": "pole", "motorcyclist": "rider",
    "bicyclist": "rider", "otherrider": "rider", "bird": "dynamic", "groundanimal": "dynamic",
    "curb": "sidewalk", "trafficsignany": "static", "trafficsignback": "static", "trashcan": "static",
    "otherbarrier": "wall", "othervehicle": "dynamic", "autorickshaw": "motorcycle", "bench": "static",
    "mountain": "static", "tramtrack": "road", "wheeledslow": "dynamic", "boat": "dynamic",
    "bikelane": "road", "bikelanesidewalk": "sidewalk", "banner": "dynamic", "dashcammount": "ego vehicle",
    "water": "ground", "sand": "ground", "pedestrianarea": "road", "firehydrant": "static",
    "cctvcamera": "static", "snow": "ground", "catchbasin": "road", "crosswalkplain": "road",
    "crosswalkzebra": "road", "manholesidewalk": "sidewalk", "curbterrain": "terrain",
    "servicelane": "road", "curbcut": "sidewalk",
    # WildDash 1 / Cityscapes spellings of the same classes
    "rectificationborder": "rectification border", "train": "train",
}

_SUFFIX = re.compile(r"\(.*\)\s*$")


def normalise_category_name(name: str) -> str:
    """``"Ego Vehicle(vehicle)"`` -> ``"egovehicle"`` (see the module doc)."""
    return re.sub(r"[\s_\-]+", "", _SUFFIX.sub("", str(name)).lower())


def wd2_train_id_lut(categories: list[dict]) -> dict[int, int]:
    """``{category id: Cityscapes train id}`` for the ``categories`` of a panoptic json."""
    out: dict[int, int] = {}
    for cat in categories:
        cs = WD2_TO_CITYSCAPES.get(normalise_category_name(cat["name"]))
        out[int(cat["id"])] = 255 if cs is None else cityscapes_train_id(cs)
    return out


def panoptic_rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """COCO panoptic segment ids from an RGB PNG: ``R + 256 G + 256^2 B`` (int64 ``[H, W]``)."""
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def find_wilddash2_root(root: str | os.PathLike) -> Path:
    """``root`` when it holds ``panoptic.json``, else ``root/wd_public_02`` or ``root/wilddash2``."""
    root = Path(root).expanduser()
    cands = (root, root / "wd_public_02", root / "wilddash2", root / "wilddash2" / "wd_public_02")
    for cand in cands:
        if (cand / "panoptic.json").is_file():
            return cand
    raise DataLayoutError(
        f"no WildDash 2 data under {root}: expected panoptic.json in one of "
        + ", ".join(str(c) for c in cands)
        + " (the unzipped wd_public_02: images/*.jpg, panoptic.json, panoptic/*.png)"
    )


class WildDash2:
    """Sorted ``(image, train_ids)`` pairs of the public WildDash 2 set, labels in Cityscapes train ids.

    Args:
        root: a data root holding ``wd_public_02/`` (or ``wilddash2/``), or that folder itself.
        short_side: resize every pair so its shorter side has this many pixels (image bilinear,
            label nearest); ``None`` keeps the native resolution.

    Items are ``(image uint8 [H, W, 3], train_ids uint8 [H, W])`` like
    :class:`oodbench.datasets.cityscapes.CityscapesSegmentation`.  ``files`` lists
    ``(image path, panoptic png path)`` sorted by image file name.

    Raises:
        DataLayoutError: missing json / folders / files, or an unreadable ``panoptic.json``.
    """

    def __init__(self, root: str | os.PathLike, short_side: int | None = None) -> None:
        if short_side is not None and int(short_side) < 1:
            raise UsageError(f"short_side must be >= 1, got {short_side}")
        self.root = find_wilddash2_root(root)
        self.short_side = short_side
        js = self.root / "panoptic.json"
        try:
            doc = json.loads(js.read_text(encoding="utf-8"))
            images = {int(im["id"]): str(im["file_name"]) for im in doc["images"]}
            anns = doc["annotations"]
            self._lut = wd2_train_id_lut(doc["categories"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataLayoutError(f"{js}: not a COCO panoptic json (images, annotations, categories): {exc}") from exc
        for sub in ("images", "panoptic"):
            if not (self.root / sub).is_dir():
                raise DataLayoutError(f"WildDash 2: folder {self.root / sub} is missing")
        entries = []
        for ann in anns:
            try:
                img_name = images[int(ann["image_id"])]
                segs = {int(s["id"]): int(s["category_id"]) for s in ann["segments_info"]}
                png = str(ann["file_name"])
            except (KeyError, TypeError, ValueError) as exc:
                raise DataLayoutError(f"{js}: malformed annotation {str(ann)[:120]}: {exc}") from exc
            entries.append((img_name, png, segs))
        if not entries:
            raise DataLayoutError(f"{js}: no annotations")
        entries.sort(key=lambda e: e[0])
        self.files: list[tuple[Path, Path]] = []
        self._segments: list[dict[int, int]] = []
        for img_name, png, segs in entries:
            img, pan = self.root / "images" / img_name, self.root / "panoptic" / png
            for p, what in ((img, "image"), (pan, "panoptic PNG")):
                if not p.is_file():
                    raise DataLayoutError(f"WildDash 2: missing {what} {p} (listed in {js})")
            self.files.append((img, pan))
            self._segments.append(segs)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        img_path, pan_path = self.files[index]
        image = read_image(img_path)
        ids = panoptic_rgb_to_id(read_image(pan_path))
        check_same_size(image, ids, img_path, pan_path)
        seg_ids = np.fromiter(self._segments[index].keys(), np.int64)
        seg_tid = np.array([self._lut.get(c, 255) for c in self._segments[index].values()], np.uint8)
        order = np.argsort(seg_ids)
        seg_ids, seg_tid = seg_ids[order], seg_tid[order]
        train_ids = np.full(ids.shape, 255, np.uint8)
        if seg_ids.size:
            pos = np.clip(np.searchsorted(seg_ids, ids), 0, seg_ids.size - 1)
            known = (seg_ids[pos] == ids) & (ids != 0)
            train_ids[known] = seg_tid[pos[known]]
        return rescale_short_side(image, train_ids, self.short_side)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"WildDash2(root={str(self.root)!r}, n={len(self)})"
