"""Mapillary Vistas (v1.2 and v2.0) as extra closed-set training data in Cityscapes train ids.

RPL+CoroCL's "with extra datasets" rows (supplementary Table 1, §B) fine-tune on Vistas and
WildDash 2 "following NFlowJS and DenseHybrid"; those methods train on Cityscapes' 19 classes, so
every Vistas class is mapped to a Cityscapes train id (0..18) or to 255 (ignore).

Official layouts (the unzipped release)::

    v1.1 / v1.2 release:  <vistas>/config.json               <vistas>/{training,validation}/labels/<key>.png
    v2.0 release:         <vistas>/config_v1.2.json          <vistas>/{training,validation}/v1.2/labels/<key>.png
                          <vistas>/config_v2.0.json          <vistas>/{training,validation}/v2.0/labels/<key>.png
    both:                 <vistas>/{training,validation}/images/<key>.jpg

Label PNGs are 8-bit palette images whose *indices* are the class ids, i.e. the positions in the
config's ``labels`` list (66 classes in v1.2, 124 in v2.0).  The ids are therefore never hard-coded
here: :func:`vistas_train_id_lut` reads the class *names* from the dataset's own config and looks
them up in :data:`VISTAS_TO_CITYSCAPES`, so one table serves both versions.

Where the mapping comes from:

* the v1.2 part (:data:`_V12_CONVENTION`) is the ``vistas_to_cityscapes`` table used by the
  NFlowJS/DenseHybrid authors' public code (Grcić, Bevandić, Šegvić: their Vistas-NP maker and their
  Mask2Former anomaly-training dataset mappers, keyed by the same v1.2 names), i.e. the convention
  of the very setup the RPL paper follows.  Notable choices of that convention, kept as is:
  parking, rail track, bike lane, service lane and lane markings -> road; curb, curb cut and
  pedestrian area -> sidewalk; guard rail -> fence; bridge and tunnel -> building; sand and snow ->
  terrain; traffic-sign frame -> traffic sign; on-rails -> train.  Everything else (animals,
  barriers, street furniture, sign backs, billboards, water, mountain, caravan, trailer, boat,
  other/slow vehicles, ego vehicle, car mount, unlabeled) -> 255.
* the v2.0 part (:data:`_V20_ADDITIONS`) is **ours**: v2.0 splits some v1.2 classes; each new name
  inherits the target of the v1.2 class it was split from (every ``marking--*`` / ``marking-only--*``
  -> road like v1.2 ``marking--general``; the six traffic-light kinds -> traffic light;
  ``human--person--individual`` and ``--person-group`` -> person, as Cityscapes labels groups
  ``person``; front-facing traffic-sign kinds -> traffic sign; parking aisle and road shoulder ->
  road like parking; garage -> building, which Cityscapes' "building" definition includes).  New
  classes without a v1.2 ancestor or with no clear Cityscapes counterpart stay 255: driveway,
  traffic island, the new barrier kinds, pole group and vehicle group (Cityscapes' own
  ``polegroup`` is ignored too), sign backs, ambiguous signs, advertisement/store/information signs,
  traffic cone, parking meter, water valve, ``void--*``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from oodbench.errors import UsageError

from ._io import check_same_size, read_image, read_label
from ._rescale import rescale_short_side
from .base import DataLayoutError

__all__ = ["VISTAS_TO_CITYSCAPES", "VISTAS_VERSIONS", "MapillaryVistas", "find_vistas_root",
           "read_vistas_config", "vistas_train_id_lut", "cityscapes_train_id"]

#: supported annotation versions
VISTAS_VERSIONS = ("v1.2", "v2.0")

# Cityscapes label name -> Vistas class names mapped to it (see the module doc for the sources)
_V12_CONVENTION: dict[str, tuple[str, ...]] = {
    "road": ("construction--flat--road", "construction--flat--bike-lane", "construction--flat--crosswalk-plain",
             "construction--flat--parking", "construction--flat--rail-track", "construction--flat--service-lane",
             "marking--crosswalk-zebra", "marking--general"),
    "sidewalk": ("construction--flat--sidewalk", "construction--barrier--curb", "construction--flat--curb-cut",
                 "construction--flat--pedestrian-area"),
    "building": ("construction--structure--building", "construction--structure--bridge",
                 "construction--structure--tunnel"),
    "wall": ("construction--barrier--wall",),
    "fence": ("construction--barrier--fence", "construction--barrier--guard-rail"),
    "pole": ("object--support--pole", "object--support--utility-pole"),
    "traffic light": ("object--traffic-light",),
    "traffic sign": ("object--traffic-sign--front", "object--support--traffic-sign-frame"),
    "vegetation": ("nature--vegetation",),
    "terrain": ("nature--terrain", "nature--sand", "nature--snow"),
    "sky": ("nature--sky",),
    "person": ("human--person",),
    "rider": ("human--rider--bicyclist", "human--rider--motorcyclist", "human--rider--other-rider"),
    "car": ("object--vehicle--car",),
    "truck": ("object--vehicle--truck",),
    "bus": ("object--vehicle--bus",),
    "train": ("object--vehicle--on-rails",),
    "motorcycle": ("object--vehicle--motorcycle",),
    "bicycle": ("object--vehicle--bicycle",),
}

_V20_ADDITIONS: dict[str, tuple[str, ...]] = {
    "road": ("construction--flat--parking-aisle", "construction--flat--road-shoulder",
             "marking--continuous--dashed", "marking--continuous--solid", "marking--continuous--zigzag",
             "marking--discrete--ambiguous", "marking--discrete--arrow--left", "marking--discrete--arrow--other",
             "marking--discrete--arrow--right", "marking--discrete--arrow--split-left-or-straight",
             "marking--discrete--arrow--split-right-or-straight", "marking--discrete--arrow--straight",
             "marking--discrete--crosswalk-zebra", "marking--discrete--give-way-row",
             "marking--discrete--give-way-single", "marking--discrete--hatched--chevron",
             "marking--discrete--hatched--diagonal", "marking--discrete--other-marking",
             "marking--discrete--stop-line", "marking--discrete--symbol--bicycle",
             "marking--discrete--symbol--other", "marking--discrete--text", "marking-only--continuous--dashed",
             "marking-only--discrete--crosswalk-zebra", "marking-only--discrete--other-marking",
             "marking-only--discrete--text"),
    "building": ("construction--structure--garage",),
    "traffic light": ("object--traffic-light--general-single", "object--traffic-light--pedestrians",
                      "object--traffic-light--general-upright", "object--traffic-light--general-horizontal",
                      "object--traffic-light--cyclists", "object--traffic-light--other"),
    "traffic sign": ("object--traffic-sign--direction-front", "object--traffic-sign--temporary-front",
                     "object--traffic-sign--information-parking"),
    "person": ("human--person--individual", "human--person--person-group"),
}


def _invert(*tables: dict[str, tuple[str, ...]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for table in tables:
        for cs_name, names in table.items():
            for n in names:
                if n in out:
                    raise AssertionError(f"Vistas class {n!r} mapped twice")
                out[n] = cs_name
    return out


#: Vistas class name -> Cityscapes label name (``cityscapesscripts`` naming); absent names -> 255
VISTAS_TO_CITYSCAPES: dict[str, str] = _invert(_V12_CONVENTION, _V20_ADDITIONS)


def cityscapes_train_id(name: str) -> int:
    """Train id (0..18, or 255) of a Cityscapes label name, from ``cityscapesscripts``."""
    from cityscapesscripts.helpers.labels import name2label

    tid = name2label[name].trainId
    return int(tid) if 0 <= tid < 255 else 255


def find_vistas_root(root: str | os.PathLike) -> Path:
    """``root`` when it holds a Vistas config, else ``root/vistas`` or ``root/mapillary_vistas``."""
    root = Path(root).expanduser()
    cands = (root, root / "vistas", root / "mapillary_vistas")
    for cand in cands:
        if any((cand / c).is_file() for c in ("config.json", "config_v1.2.json", "config_v2.0.json")):
            return cand
    raise DataLayoutError(
        f"no Mapillary Vistas data under {root}: expected config.json / config_v2.0.json in one of "
        + ", ".join(str(c) for c in cands)
        + " (the unzipped release: training/images/*.jpg with training/labels/*.png (v1.2) or "
        "training/v2.0/labels/*.png (v2.0))"
    )


def _layout(root: Path, version: str, split: str) -> tuple[Path, Path]:
    """``(config file, label folder)`` of ``version``: the v2.0 release's versioned folders first,
    then the flat v1.x release (``config.json`` + ``<split>/labels``, v1.2 only)."""
    config = root / f"config_{version}.json"
    labels = root / split / version / "labels"
    if config.is_file() and labels.is_dir():
        return config, labels
    if version == "v1.2" and (root / "config.json").is_file() and (root / split / "labels").is_dir():
        return root / "config.json", root / split / "labels"
    if version == "v1.2":
        want = (f"{root}/config.json with {root}/{split}/labels/ (v1.2 release) "
                f"or {config} with {labels}/ (v2.0 release)")
    else:
        want = f"{config} with {labels}/"
    raise DataLayoutError(f"Mapillary Vistas {version} {split}: expected {want}")


def read_vistas_config(path: str | os.PathLike) -> list[str]:
    """Class names of a Vistas config, in id order (``labels[i]["name"]`` is class id ``i``)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        names = [str(lab["name"]) for lab in doc["labels"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataLayoutError(
            f"{path}: not a Mapillary Vistas config (need a 'labels' list with 'name's): {exc}") from exc
    if not 0 < len(names) <= 255:
        raise DataLayoutError(f"{path}: expected 1..255 labels, found {len(names)}")
    return names


def vistas_train_id_lut(names: list[str]) -> np.ndarray:
    """``lut[vistas id] -> Cityscapes train id`` (uint8, 256 entries) for the config's class names."""
    lut = np.full(256, 255, np.uint8)
    for i, name in enumerate(names):
        cs = VISTAS_TO_CITYSCAPES.get(name)
        if cs is not None:
            lut[i] = cityscapes_train_id(cs)
    return lut


class MapillaryVistas:
    """Sorted ``(image, train_ids)`` pairs of one Vistas split, labels in Cityscapes train ids.

    Args:
        root: a data root holding ``vistas/`` (or ``mapillary_vistas/``), or the Vistas folder itself.
        split: ``"training"`` or ``"validation"`` (the release's folder names; ``testing`` has no labels).
        version: ``"v1.2"`` (66 classes, what the RPL supplementary describes) or ``"v2.0"`` (124).
        short_side: resize every pair so its shorter side has this many pixels (image bilinear,
            label nearest); ``None`` keeps the native resolution.

    Items are ``(image uint8 [H, W, 3], train_ids uint8 [H, W])`` exactly like
    :class:`oodbench.datasets.cityscapes.CityscapesSegmentation`; ``files`` lists the
    ``(image path, label path)`` pairs and ``class_names`` the config's names in id order.

    Raises:
        DataLayoutError: missing config / folders, an image without its label, or no images.
    """

    def __init__(self, root: str | os.PathLike, split: str = "training", version: str = "v1.2",
                 short_side: int | None = None) -> None:
        if split not in ("training", "validation"):
            raise UsageError(
                f"split must be 'training' or 'validation' (Vistas testing labels are not public), got {split!r}")
        if version not in VISTAS_VERSIONS:
            raise UsageError(f"version must be one of {', '.join(VISTAS_VERSIONS)}, got {version!r}")
        if short_side is not None and int(short_side) < 1:
            raise UsageError(f"short_side must be >= 1, got {short_side}")
        self.root = find_vistas_root(root)
        self.split, self.version, self.short_side = split, version, short_side
        config, label_dir = _layout(self.root, version, split)
        img_dir = self.root / split / "images"
        if not img_dir.is_dir():
            raise DataLayoutError(f"Mapillary Vistas {version} {split}: folder {img_dir} is missing")
        images = sorted(img_dir.glob("*.jpg"))
        if not images:
            raise DataLayoutError(f"Mapillary Vistas {version} {split}: no *.jpg images under {img_dir}")
        self.files: list[tuple[Path, Path]] = [(img, label_dir / f"{img.stem}.png") for img in images]
        missing = [lab for _, lab in self.files if not lab.is_file()]
        if missing:
            raise DataLayoutError(
                f"Mapillary Vistas {version} {split}: {len(missing)} image(s) without a label, e.g. {missing[0]}")
        self.config = config
        self.class_names = read_vistas_config(config)
        self._lut = vistas_train_id_lut(self.class_names)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        img_path, lab_path = self.files[index]
        image = read_image(img_path)
        raw = read_label(lab_path)  # palette indices = Vistas class ids
        check_same_size(image, raw, img_path, lab_path)
        return rescale_short_side(image, self._lut[raw], self.short_side)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return (f"MapillaryVistas(root={str(self.root)!r}, split={self.split!r}, version={self.version!r}, "
                f"n={len(self)})")
