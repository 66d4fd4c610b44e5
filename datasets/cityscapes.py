"""Cityscapes semantic segmentation in the official layout, as closed-set training data.

Layout (``cityscapesScripts`` convention)::

    <cityscapes>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    <cityscapes>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png   (preferred)
    <cityscapes>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png        (fallback)

Train ids 0..18 and 255 (ignore).  When ``*_labelTrainIds.png`` is absent (a fresh download: the
official script ``createTrainIdLabelImgs`` was not run) the label ids are mapped on the fly with
the ``cityscapesscripts.helpers.labels`` table (``trainId`` 255 / -1 -> 255), the same mapping
RPL's training loader relies on (``yyliu01/RPL:rpl_corocl.code/dataset/training/cityscapes.py``,
docs/rpl-official.md §9).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from oodbench.errors import UsageError

from .base import DataLayoutError

__all__ = ["CityscapesSegmentation", "find_cityscapes_root", "label_id_to_train_id_lut"]

_IMG_SUFFIX = "_leftImg8bit.png"


def label_id_to_train_id_lut() -> np.ndarray:
    """``lut[label_id] -> train_id`` (uint8, 256 entries; ignored and unknown ids -> 255)."""
    from cityscapesscripts.helpers.labels import labels

    lut = np.full(256, 255, np.uint8)
    for lab in labels:
        if 0 <= lab.id < 256 and 0 <= lab.trainId < 255:
            lut[lab.id] = lab.trainId
    return lut


def find_cityscapes_root(root: str | os.PathLike) -> Path:
    """``root`` itself when it holds ``leftImg8bit/``, else ``root/cityscapes``; clear error otherwise."""
    root = Path(root).expanduser()
    for cand in (root, root / "cityscapes"):
        if (cand / "leftImg8bit").is_dir():
            return cand
    raise DataLayoutError(
        f"no Cityscapes data under {root}: expected {root}/leftImg8bit/ or {root}/cityscapes/leftImg8bit/ "
        "(official layout: leftImg8bit/<split>/<city>/*_leftImg8bit.png and gtFine/<split>/<city>/...; "
        "`oodbench download cityscapes` says where to get it)"
    )


class CityscapesSegmentation:
    """Sorted ``(image, train_ids)`` pairs of one Cityscapes split.

    Args:
        root: a data root holding ``cityscapes/`` or the Cityscapes folder itself.
        split: ``"train"``, ``"val"`` (``"test"`` has no public labels and is refused).

    Items are ``(image uint8 [H, W, 3], train_ids uint8 [H, W])``.  ``files`` lists the
    ``(image path, label path, is_train_ids)`` triples.

    Raises:
        DataLayoutError: missing folders, an image without its label, or no images at all.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train") -> None:
        if split not in ("train", "val"):
            raise UsageError(f"split must be 'train' or 'val' (Cityscapes test labels are not public), got {split!r}")
        self.root = find_cityscapes_root(root)
        self.split = split
        img_dir = self.root / "leftImg8bit" / split
        gt_dir = self.root / "gtFine" / split
        for d in (img_dir, gt_dir):
            if not d.is_dir():
                raise DataLayoutError(f"Cityscapes {split}: folder {d} is missing")
        images = sorted(img_dir.glob(f"*/*{_IMG_SUFFIX}"))
        if not images:
            raise DataLayoutError(f"Cityscapes {split}: no */*{_IMG_SUFFIX} images under {img_dir}")
        self.files: list[tuple[Path, Path, bool]] = []
        missing = []
        for img in images:
            stem = img.name[: -len(_IMG_SUFFIX)]
            base = gt_dir / img.parent.name / f"{stem}_gtFine"
            train_ids = base.with_name(base.name + "_labelTrainIds.png")
            label_ids = base.with_name(base.name + "_labelIds.png")
            if train_ids.is_file():
                self.files.append((img, train_ids, True))
            elif label_ids.is_file():
                self.files.append((img, label_ids, False))
            else:
                missing.append(img)
        if missing:
            raise DataLayoutError(
                f"Cityscapes {split}: {len(missing)} image(s) without *_gtFine_labelTrainIds.png or "
                f"*_gtFine_labelIds.png, e.g. {missing[0]} (expected the label under {gt_dir})"
            )
        self._lut = label_id_to_train_id_lut()

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        img_path, lab_path, is_train_ids = self.files[index]
        with Image.open(img_path) as im:
            image = np.asarray(im.convert("RGB"), dtype=np.uint8)
        with Image.open(lab_path) as im:
            if im.mode not in ("L", "P", "I", "I;16"):
                raise DataLayoutError(f"{lab_path}: expected a single-channel label PNG, got mode {im.mode}")
            raw = np.asarray(im)
        if raw.shape != image.shape[:2]:
            raise DataLayoutError(f"{lab_path}: label is {raw.shape}, image {img_path} is {image.shape[:2]}")
        if raw.dtype != np.uint8:
            if raw.min() < 0 or raw.max() > 255:
                raise DataLayoutError(f"{lab_path}: label values outside 0..255")
            raw = raw.astype(np.uint8)
        if not is_train_ids:
            return image, self._lut[raw]
        bad = np.flatnonzero(np.bincount(raw.ravel(), minlength=256)[19:255]) + 19
        if bad.size:
            raise DataLayoutError(
                f"{lab_path}: train ids must be 0..18 or 255, found {bad[:8].tolist()} "
                "(is this a labelIds file saved under the labelTrainIds name?)"
            )
        return image, raw

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"CityscapesSegmentation(root={str(self.root)!r}, split={self.split!r}, n={len(self)})"
