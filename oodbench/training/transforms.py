"""Array-level augmentation primitives for segmentation training (image + label together).

Images enter as RGB ``uint8 [H,W,3]`` and are normalised first (:func:`normalize`), so every later
step works on float ``[3,H,W]`` tensors and pads with 0, i.e. with the normalisation mean colour
(the reference's normalise-before-pad order, docs/rpl-official.md §5.4). Labels are ``int64 [H,W]``;
padding is 255 (ignore). Randomness always comes from an explicit ``numpy.random.Generator``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from oodbench.errors import UsageError

from ..segmenters.base import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IGNORE_LABEL",
    "normalize",
    "hflip",
    "resize",
    "pad_to",
    "random_crop",
    "pad_or_center_crop",
]

IGNORE_LABEL = 255


def normalize(image: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """RGB ``uint8 [H,W,3]`` -> float32 ``[3,H,W]``, ``(x/255 - mean) / std``."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"normalize: expected RGB uint8 [H,W,3], got {arr.dtype} {arr.shape}")
    arr = np.ascontiguousarray(arr) if arr.flags.writeable else np.array(arr)  # torch needs writable memory
    t = torch.from_numpy(arr).permute(2, 0, 1).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32)[:, None, None]
    s = torch.tensor(std, dtype=torch.float32)[:, None, None]
    return (t - m) / s


def hflip(image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return image.flip(-1), label.flip(-1)


def resize(image: torch.Tensor, label: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear image (half-pixel centres, no antialias: OpenCV ``INTER_LINEAR``), nearest label."""
    h, w = int(size[0]), int(size[1])
    if (h, w) == tuple(image.shape[-2:]):
        return image, label
    if h < 1 or w < 1:
        raise UsageError(f"resize to {size}: sizes must be >= 1")
    img = F.interpolate(image[None], size=(h, w), mode="bilinear", align_corners=False)[0]
    lab = F.interpolate(label[None, None].float(), size=(h, w), mode="nearest")[0, 0].long()
    return img, lab


def pad_to(image: torch.Tensor, label: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad centred to at least ``size`` (image 0 = mean colour, label 255)."""
    h, w = image.shape[-2:]
    ph, pw = max(size[0] - h, 0), max(size[1] - w, 0)
    if ph == 0 and pw == 0:
        return image, label
    top, left = ph // 2, pw // 2
    pads = (left, pw - left, top, ph - top)
    return F.pad(image, pads, value=0.0), F.pad(label, pads, value=IGNORE_LABEL)


def random_crop(
    image: torch.Tensor, label: torch.Tensor, size: tuple[int, int], rng: np.random.Generator, inclusive_bound: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """A uniformly placed ``size`` crop; pads centred first when the input is smaller.

    ``inclusive_bound=True`` reproduces the reference's off-by-one: offsets up to ``H - h + 1``
    inclusive, so the crop can come out 1 px short and is padded back (docs/rpl-official.md §5.3).
    """
    h, w = int(size[0]), int(size[1])
    H, W = image.shape[-2:]
    extra = 1 if inclusive_bound else 0
    top = int(rng.integers(0, max(H - h, 0) + extra + 1))
    left = int(rng.integers(0, max(W - w, 0) + extra + 1))
    image, label = image[:, top : top + h, left : left + w], label[top : top + h, left : left + w]
    return pad_to(image, label, (h, w))


def pad_or_center_crop(image: torch.Tensor, label: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad centred to ``size``, then centre-crop to exactly ``size`` (the reference COCO canvas)."""
    image, label = pad_to(image, label, size)
    H, W = image.shape[-2:]
    top, left = (H - size[0]) // 2, (W - size[1]) // 2
    return image[:, top : top + size[0], left : left + size[1]], label[top : top + size[0], left : left + size[1]]
