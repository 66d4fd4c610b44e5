"""Optional short-side rescaling of a training pair (image bilinear, label nearest).

Vistas frames are up to ~5000 px wide and WildDash 2 frames 1920x1080, against 2048x1024 for
Cityscapes; a trainer that random-crops a fixed window (RPL: 700x700) sees a much smaller part of
the scene on them unless they are brought to a comparable scale first.  Labels are resampled with
nearest neighbour so no new (blended) ids appear.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["rescale_short_side"]


def rescale_short_side(image: np.ndarray, label: np.ndarray, short_side: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``(image, label)`` resized so that ``min(H, W) == short_side`` (aspect kept); ``None`` = as is."""
    if short_side is None:
        return image, label
    h, w = label.shape
    s = int(short_side) / min(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))  # PIL: (W, H)
    if size == (w, h):
        return image, label
    img = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR), dtype=np.uint8)
    lab = np.asarray(Image.fromarray(label).resize(size, Image.NEAREST), dtype=np.uint8)
    return img, lab
