"""Plain helpers shared by several test modules (importable because conftest puts tests/ on sys.path)."""
from __future__ import annotations

import numpy as np


class TinyCity:
    """Stand-in for CityscapesSegmentation (uint8 image, uint8 train ids with a void band)."""

    def __init__(self, n: int, h: int = 40, w: int = 56) -> None:
        self.n, self.h, self.w = n, h, w

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        rng = np.random.default_rng(i)
        img = rng.integers(0, 256, (self.h, self.w, 3), dtype=np.uint8)
        lab = rng.integers(0, 19, (self.h, self.w)).astype(np.uint8)
        lab[:3] = 255
        return img, lab
