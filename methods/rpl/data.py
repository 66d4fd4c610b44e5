"""Outlier-exposure (OE) training data for RPL+CoroCL: COCO objects pasted into Cityscapes crops.

Per sample (docs/rpl-official.md §5), all randomness from ``numpy_rng(seed, epoch, index)``:

1. Cityscapes image and train ids; horizontal flip with probability ``flip_prob``; normalise
   (ImageNet mean/std); uniform random ``crop_size`` crop (padded centred with the mean colour and
   label 255 when the image is smaller).
2. One COCO image and its OE mask (0 background, 254 object; from ``oodbench prepare coco-ood``).
   * **context copy** (for CoroCL): the unscaled image, centre-padded (mean colour, label 255) and
     centre-cropped to ``crop_size`` -- padded, not resized;
   * **object copy**: scaled by ``s`` drawn uniformly from ``scales`` (bilinear image, nearest mask,
     size ``int(H*s), int(W*s)``), brought to ``crop_size`` the same way; the union bounding box of
     all pixels == 254 is placed at a uniform position inside the crop and **only the mask pixels**
     are copied; their label becomes 254 (overwriting any class, 255 included). No 254 pixel
     left after scaling -> nothing is pasted.
3. Returns ``(city_mix_img [3,h,w] f32, city_mix_gt [h,w] i64, coco_ctx_img, coco_ctx_gt)``.

Reference quirks (``yyliu01/RPL:rpl_corocl.code/dataset/data_loader.py``, ``utils/img_utils.py``,
``dataset/mix_ood_sampler.py``, ``engine/lr_policy.py``) and the choice made for each -- one flag,
``reference_quirks``, switches all of them (:data:`FIXED` is the default, :data:`REFERENCE` the
original):

==========================  ===========================================  ==========================
quirk                       reference (``reference_quirks=True``)        default (fixed)
==========================  ===========================================  ==========================
h-flip probability          0.8 (``random() >= 0.2`` flips)              0.5
Cityscapes order            not shuffled (inverted sampler condition)    shuffled every epoch
object scales               [.25, .5, .5, .75, .1, .125] (0.5 twice)     {.1, .125, .25, .5, .75}
crop offset bound           inclusive ``H-h+1`` (1-px pad possible)      ``H-h``
COCO draw                   per epoch a random subset of len(Cityscapes)  uniform over all masks
                            images, then one random image of it
LR schedule                 poly set after the step with its own index   step t uses poly(t)
                            (steps 0 and 1 both at the base LR)
==========================  ===========================================  ==========================

Normalise-before-pad is **kept in both modes**: it pads with the mean colour (0 after
normalisation), which is the sensible value, and doing every resize on the normalised float image
makes the two orders give identical tensors, so no flag is needed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from oodbench.contracts import ContractError
from oodbench.errors import UsageError
from oodbench.training.seeding import numpy_rng
from oodbench.training.transforms import hflip, normalize, pad_or_center_crop, random_crop, resize

from .losses import OOD_LABEL

__all__ = ["OERecipe", "FIXED", "REFERENCE", "recipe", "OutlierExposureSet", "paste_object", "load_coco_pair"]


@dataclass(frozen=True)
class OERecipe:
    """The switches of the quirk table in the module doc."""

    flip_prob: float
    shuffle: bool
    scales: tuple[float, ...]
    crop_inclusive_bound: bool
    coco_epoch_subset: bool
    lr_off_by_one: bool


FIXED = OERecipe(0.5, True, (0.1, 0.125, 0.25, 0.5, 0.75), False, False, False)
REFERENCE = OERecipe(0.8, False, (0.25, 0.5, 0.5, 0.75, 0.1, 0.125), True, True, True)


def recipe(reference_quirks: bool) -> OERecipe:
    """:data:`REFERENCE` when ``reference_quirks`` else :data:`FIXED`."""
    return REFERENCE if reference_quirks else FIXED


def load_coco_pair(image_path: str | os.PathLike, mask_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 image and uint8 OE mask (values 0/254; 255 tolerated); errors name the files."""
    from PIL import Image

    with Image.open(image_path) as im:
        image = np.asarray(im.convert("RGB"))
    with Image.open(mask_path) as im:
        mask = np.asarray(im.convert("L") if im.mode not in ("L", "P") else im)
    if mask.shape != image.shape[:2]:
        raise ContractError(f"COCO mask {mask_path} is {mask.shape}, image {image_path} is {image.shape[:2]}")
    counts = np.bincount(mask.ravel(), minlength=256)
    bad = np.flatnonzero(counts)
    bad = bad[(bad != 0) & (bad != OOD_LABEL) & (bad != 255)]
    if bad.size:
        raise ContractError(f"COCO OE mask {mask_path} has values {bad[:8].tolist()}; expected 0 (background) "
                         "and 254 (object) as written by `oodbench prepare coco-ood`")
    return image, mask


def paste_object(image: torch.Tensor, label: torch.Tensor, obj_image: torch.Tensor, obj_mask: torch.Tensor,
                 rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste the mask==254 pixels of ``obj_*`` (cut to their union bounding box) at a uniform
    position inside ``image``; returns new tensors (inputs untouched)."""
    ys, xs = torch.nonzero(obj_mask == OOD_LABEL, as_tuple=True)
    if ys.numel() == 0:
        return image, label
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    bh, bw = y1 - y0, x1 - x0
    H, W = label.shape
    if bh > H or bw > W:
        raise UsageError(f"object box {bh}x{bw} does not fit the {H}x{W} crop")
    top = int(rng.integers(0, H - bh + 1))
    left = int(rng.integers(0, W - bw + 1))
    sel = obj_mask[y0:y1, x0:x1] == OOD_LABEL
    image, label = image.clone(), label.clone()
    region = image[:, top : top + bh, left : left + bw]
    region[:, sel] = obj_image[:, y0:y1, x0:x1][:, sel]
    label[top : top + bh, left : left + bw][sel] = OOD_LABEL
    return image, label


class OutlierExposureSet(torch.utils.data.Dataset):
    """City-mix + COCO-context samples keyed by ``(index, epoch)`` (see module doc).

    Args:
        city: dataset of ``(uint8 image [H,W,3], uint8 train ids [H,W])``, e.g.
            ``oodbench.datasets.cityscapes.CityscapesSegmentation(root, "train")``.
        coco: sequence of ``(image path, mask path)``, e.g. ``oodbench.datasets.coco.CocoOutliers``.
        crop_size: ``(h, w)`` of the training crop (700x700 in the paper).
        reference_quirks: reproduce the reference's data quirks (module doc table).
        seed: run seed; each sample draws from ``numpy_rng(seed, epoch, index, "rpl-oe")``.
        scales: override the recipe's object scale factors (drawn uniformly); the defaults suit
            640 px COCO images pasted into 700 px crops.
    """

    def __init__(self, city: Any, coco: Sequence[tuple[Any, Any]], crop_size: Sequence[int] = (700, 700),
                 reference_quirks: bool = False, seed: int = 0,
                 scales: Sequence[float] | None = None) -> None:
        if len(coco) == 0:
            raise UsageError("no COCO outlier masks: run `oodbench prepare coco-ood` first")
        self.city, self.coco = city, list(coco)
        self.crop = (int(crop_size[0]), int(crop_size[1]))
        self.recipe = recipe(reference_quirks)
        if scales is not None:  # e.g. smaller objects for crops much smaller than 700 px
            if not scales or any(not 0 < float(v) <= 4 for v in scales):
                raise UsageError(f"paste scales must be in (0, 4], got {scales}")
            self.recipe = replace(self.recipe, scales=tuple(float(v) for v in scales))
        self.seed = seed
        self._subset: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.city)

    def coco_index(self, rng: np.random.Generator, epoch: int) -> int:
        """Which COCO pair a sample uses (reference: a random member of the epoch's subset)."""
        if not self.recipe.coco_epoch_subset:
            return int(rng.integers(len(self.coco)))
        if self._subset is None or self._subset[0] != epoch:
            perm = numpy_rng(self.seed, epoch, "coco-subset").permutation(len(self.coco))
            self._subset = (epoch, perm[: len(self.city)])
        subset = self._subset[1]
        return int(subset[int(rng.integers(len(subset)))])

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        index, epoch = key
        rng = numpy_rng(self.seed, epoch, index, "rpl-oe")
        image, label = self.city[index]
        x, y = normalize(image), torch.from_numpy(np.asarray(label).astype(np.int64))
        if rng.random() < self.recipe.flip_prob:
            x, y = hflip(x, y)
        x, y = random_crop(x, y, self.crop, rng, inclusive_bound=self.recipe.crop_inclusive_bound)

        img_path, mask_path = self.coco[self.coco_index(rng, epoch)]
        c_img, c_mask = load_coco_pair(img_path, mask_path)
        cx, cy = normalize(c_img), torch.from_numpy(c_mask.astype(np.int64))
        ctx_img, ctx_gt = pad_or_center_crop(cx, cy, self.crop)

        s = float(self.recipe.scales[int(rng.integers(len(self.recipe.scales)))])
        size = (max(1, int(cx.shape[1] * s)), max(1, int(cx.shape[2] * s)))
        ox, oy = pad_or_center_crop(*resize(cx, cy, size), self.crop)
        x, y = paste_object(x, y, ox, oy, rng)
        return x.contiguous(), y.contiguous(), ctx_img.contiguous(), ctx_gt.contiguous()

    def describe(self) -> dict[str, Any]:
        """Facts recorded in the run config."""
        return {"crop_size": list(self.crop), "recipe": self.recipe.__dict__ | {"scales": list(self.recipe.scales)},
                "num_city": len(self.city), "num_coco": len(self.coco)}


def coco_pairs_from_root(coco_root: str | os.PathLike) -> list[tuple[Path, Path]]:
    """``CocoOutliers(coco_root)`` pairs (``oodbench.datasets.coco``)."""
    from oodbench.datasets.coco import CocoOutliers

    return list(CocoOutliers(coco_root))
