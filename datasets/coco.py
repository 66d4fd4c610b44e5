"""COCO 2017 as the outlier-exposure (OE) source of RPL+CoroCL.

:func:`prepare_coco_ood` reproduces the Meta-OoD preparation that RPL's docs point to
(``robin-chan/meta-ood:preparation/prepare_coco_segmentation.py``; docs/rpl-official.md §5.1):

* read ``<coco>/annotations/instances_train2017.json`` with ``pycocotools``;
* drop every image with at least one instance of **person, bicycle, car, motorcycle, bus, truck,
  traffic light, stop sign** (``train`` is *not* excluded);
* keep images with height >= ``min_size`` **and** width >= ``min_size`` (480);
* mask = ``max`` over all annotations (crowd included) of ``annToMask * 254`` on a zero canvas, i.e.
  0 = background, 254 = any object; images without annotations give an all-zero mask (as upstream);
* write ``<coco>/annotations/ood_seg_train2017/<12-digit id>.png``.

:class:`CocoOutliers` lists the resulting ``(image path, mask path)`` pairs.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from oodbench.atomic import atomic_path
from oodbench.cli_config import add_command, arg
from oodbench.contracts import OOD_PASTE

from .base import DataLayoutError

__all__ = [
    "PrepareCocoConfig",
    "EXCLUDED_CATEGORIES",
    "MASK_DIR",
    "CocoOutliers",
    "add_prepare_parser",
    "find_coco_root",
    "prepare_coco_ood",
    "run_prepare",
]

#: Meta-OoD's excluded COCO class names (Cityscapes-like objects)
EXCLUDED_CATEGORIES = ("person", "bicycle", "car", "motorcycle", "bus", "truck", "traffic light", "stop sign")
#: where ``prepare_coco_ood`` writes the 0/254 masks, relative to the COCO root
MASK_DIR = Path("annotations") / "ood_seg_train2017"
ANNOTATIONS = Path("annotations") / "instances_train2017.json"


def find_coco_root(root: str | os.PathLike) -> Path:
    """``root`` when it holds ``annotations/`` or ``train2017/``, else ``root/coco``; clear error otherwise."""
    root = Path(root).expanduser()
    for cand in (root, root / "coco"):
        if (cand / "annotations").is_dir() or (cand / "train2017").is_dir():
            return cand
    raise DataLayoutError(
        f"no COCO data under {root}: expected {root}/train2017/ and {root}/{ANNOTATIONS} "
        f"(or the same under {root}/coco/)"
    )


def prepare_coco_ood(coco_root: str | os.PathLike, out: str | os.PathLike | None = None, min_size: int = 480,
                     progress: bool | None = None) -> dict:
    """Write the 0/254 outlier masks; return statistics.

    Args:
        coco_root: COCO folder (or a data root holding ``coco/``).
        out: mask folder (default ``<coco>/annotations/ood_seg_train2017``).
        min_size: minimum height and width in pixels (Meta-OoD: 480).
        progress: show a tqdm bar (``None``: only on a terminal).

    Returns:
        ``{"images": total, "excluded_category": n, "too_small": n, "kept": n, "written": n,
        "skipped_existing": n, "without_objects": n, "out": str}``.  The category test comes
        first, so an excluded small image counts as ``excluded_category``.

    Raises:
        DataLayoutError: missing annotation file / image folder / image files, or an annotation
            file without one of the excluded categories (not a COCO instances file).
    """
    from pycocotools.coco import COCO
    from tqdm import tqdm

    root = find_coco_root(coco_root)
    ann_file = root / ANNOTATIONS
    img_dir = root / "train2017"
    if not ann_file.is_file():
        raise DataLayoutError(f"COCO annotations {ann_file} are missing (download annotations_trainval2017.zip)")
    if not img_dir.is_dir():
        raise DataLayoutError(f"COCO image folder {img_dir} is missing (download train2017.zip)")
    out_dir = Path(out) if out is not None else root / MASK_DIR
    with warnings.catch_warnings(), open(os.devnull, "w") as devnull:
        warnings.simplefilter("ignore", DeprecationWarning)
        with contextlib.redirect_stdout(devnull):  # pycocotools prints timing lines
            try:
                coco = COCO(str(ann_file))
            except (ValueError, KeyError, TypeError) as exc:
                raise DataLayoutError(f"{ann_file}: not a COCO instances file ({exc})") from exc
    names = {c["name"]: c["id"] for c in coco.loadCats(coco.getCatIds())}
    missing = [n for n in EXCLUDED_CATEGORIES if n not in names]
    if missing:
        raise DataLayoutError(f"{ann_file}: categories {missing} are missing; expected COCO instances annotations")
    excluded_ids: set[int] = set()
    for name in EXCLUDED_CATEGORIES:
        excluded_ids.update(coco.getImgIds(catIds=[names[name]]))
    stats = {"images": 0, "excluded_category": 0, "too_small": 0, "kept": 0, "written": 0,
             "skipped_existing": 0, "without_objects": 0, "out": str(out_dir)}
    todo = []
    for img_id in sorted(coco.getImgIds()):
        stats["images"] += 1
        info = coco.loadImgs(img_id)[0]
        if img_id in excluded_ids:
            stats["excluded_category"] += 1
        elif info["height"] < min_size or info["width"] < min_size:
            stats["too_small"] += 1
        else:
            todo.append(info)
    absent = [i["file_name"] for i in todo if not (img_dir / i["file_name"]).is_file()]
    if absent:
        raise DataLayoutError(f"{len(absent)} kept COCO image(s) missing under {img_dir}, e.g. {absent[0]}")
    stats["kept"] = len(todo)
    out_dir.mkdir(parents=True, exist_ok=True)
    for info in tqdm(todo, desc="coco-ood masks", unit="img", disable=(None if progress is None else not progress)):
        target = out_dir / f"{Path(info['file_name']).stem}.png"
        if target.is_file():
            stats["skipped_existing"] += 1
            continue
        mask = np.zeros((info["height"], info["width"]), np.uint8)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=info["id"], iscrowd=None))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            for ann in anns:
                mask = np.maximum(coco.annToMask(ann).astype(np.uint8) * OOD_PASTE, mask)
        stats["without_objects"] += int(not anns)
        with atomic_path(target) as tmp:
            Image.fromarray(mask, mode="L").save(tmp, format="PNG")
        stats["written"] += 1
    return stats


class CocoOutliers:
    """The prepared OE pairs: ``self[i] -> (image path, mask path)``, sorted by image id.

    Raises:
        DataLayoutError: the mask folder is missing or empty (run ``oodbench prepare coco-ood``),
            or a mask has no image.
    """

    def __init__(self, coco_root: str | os.PathLike, masks: str | os.PathLike | None = None) -> None:
        self.root = find_coco_root(coco_root)
        mask_dir = Path(masks) if masks is not None else self.root / MASK_DIR
        hint = f"run `oodbench prepare coco-ood --data-root {self.root}` first"
        if not mask_dir.is_dir():
            raise DataLayoutError(f"COCO outlier masks {mask_dir} are missing; {hint}")
        mask_files = sorted(p for p in mask_dir.glob("*.png") if not p.name.startswith(".tmp-"))
        if not mask_files:
            raise DataLayoutError(f"no COCO outlier masks in {mask_dir}; {hint}")
        self.pairs: list[tuple[Path, Path]] = []
        for m in mask_files:
            img = self.root / "train2017" / f"{m.stem}.jpg"
            if not img.is_file():
                raise DataLayoutError(f"COCO outlier mask {m} has no image {img}")
            self.pairs.append((img, m))

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[Path, Path]:
        return self.pairs[index]

    def __iter__(self) -> Iterator[tuple[Path, Path]]:
        return iter(self.pairs)

    def __repr__(self) -> str:
        return f"CocoOutliers(root={str(self.root)!r}, n={len(self)})"


# ---------------------------------------------------------------------------------------------- CLI
@dataclass(kw_only=True)
class PrepareCocoConfig:
    """``oodbench prepare coco-ood`` (the parser is generated from it; :func:`run_prepare` reads it)."""

    data_root: str | None = field(default=None, metadata=arg("data root holding coco/ (default: $OODBENCH_DATA)"))
    coco_root: str | None = field(default=None, metadata=arg("the COCO folder itself (overrides --data-root)"))
    out: str | None = field(default=None, metadata=arg("mask folder (default <coco>/annotations/ood_seg_train2017)"))
    min_size: int = field(default=480, metadata=arg("minimum height and width (default 480)"))


def add_prepare_parser(subparsers) -> argparse.ArgumentParser:
    """``oodbench prepare coco-ood [--data-root R | --coco-root C] [--min-size 480]``."""
    p = subparsers.add_parser("prepare", help="prepare training data (COCO outlier masks)",
                              description="Prepare derived training data.")
    sub = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    add_command(sub, "coco-ood", PrepareCocoConfig, run_prepare,
                help="build COCO outlier masks (0 background / 254 object) for RPL+CoroCL",
                description="Drop COCO train2017 images with person/bicycle/car/motorcycle/bus/truck/"
                            "traffic light/stop sign, keep both sides >= --min-size, and write the union "
                            "of all instance masks as 254 on 0 to annotations/ood_seg_train2017/<id>.png.")
    return p


def run_prepare(args: argparse.Namespace) -> int:
    """Handler of ``oodbench prepare coco-ood``; prints the statistics, returns the exit code."""
    from .base import resolve_data_root

    root = Path(args.coco_root) if args.coco_root else resolve_data_root(args.data_root)
    stats = prepare_coco_ood(root, out=args.out, min_size=args.min_size)
    print(f"coco-ood: {stats['images']} images; dropped {stats['excluded_category']} with an excluded class "
          f"and {stats['too_small']} smaller than {args.min_size} px; {stats['kept']} kept "
          f"({stats['written']} masks written, {stats['skipped_existing']} already present) -> {stats['out']}")
    return 0
