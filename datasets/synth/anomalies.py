"""Placing anomalies into painted scenes with the character of each benchmark.

* ``on_road``: obstacles standing on the road surface (ObstacleTrack, Lost & Found), sized in metres
  through the scene's perspective, so far obstacles are tiny and near ones moderate;
* ``large``: big objects in the near field (RoadAnomaly: 5-40 % of the frame);
* ``anywhere``: objects on any ground class (AnomalyTrack, Fishyscapes Static, StreetHazards).
"""
from __future__ import annotations

import numpy as np

from .objects import ANOMALY_KINDS, anomaly_sprite, paste
from .scene import Scene
from .world import ANOMALY, LANE, ROAD, SIDEWALK, TERRAIN

__all__ = ["SIZES_M", "add_anomalies"]

#: plausible object heights in metres per kind (min, max)
SIZES_M = {"animal": (0.9, 1.8), "cones": (0.5, 0.9), "box": (0.3, 0.8), "crate": (0.6, 1.4), "debris": (0.2, 0.5)}


def add_anomalies(rng: np.random.Generator, sc: Scene, n: int, *, mode: str = "anywhere",
                  kinds: tuple[str, ...] = ANOMALY_KINDS, scale: float = 1.0, min_px: int = 3,
                  min_frac: float = 0.0) -> np.ndarray:
    """Paste ``n`` anomalies into ``sc`` (image and class map); return the union mask.

    Args:
        mode: ``"on_road"``, ``"large"`` or ``"anywhere"`` (see the module docstring).
        kinds: anomaly kinds to draw from.
        scale: multiplies the metric size (obstacle tracks use small objects).
        min_px: smallest sprite height in pixels.
        min_frac: smallest sprite height as a fraction of the image height (drawn in [1, 1.8]x).
    """
    h, w = sc.shape
    hz = sc.horizon
    ground = np.isin(sc.cls, (ROAD, LANE)) if mode in ("on_road", "large") else \
        np.isin(sc.cls, (ROAD, LANE, SIDEWALK, TERRAIN))
    out = np.zeros((h, w), bool)
    for _ in range(n):
        kind = kinds[int(rng.integers(len(kinds)))]
        lo_row = hz + (0.45 if mode == "large" else 0.2 if min_frac else 0.12) * (h - hz)
        hi_row = h - 2 if mode != "on_road" else hz + 0.9 * (h - hz)
        for _attempt in range(20):
            yb = int(rng.uniform(lo_row, hi_row))
            cols = np.flatnonzero(ground[yb] & ~out[yb])
            if cols.size:
                break
        else:
            continue
        cx = float(cols[int(rng.integers(cols.size))])
        lo, hi = SIZES_M[kind]
        size_px = rng.uniform(lo, hi) * scale * sc.ppm(yb)
        if mode == "large":
            size_px = max(size_px, rng.uniform(0.25, 0.55) * h)
        size_px = max(size_px, min_frac * h * rng.uniform(1.0, 1.8))
        size_px = float(np.clip(size_px, min_px, 0.7 * h))
        m = paste(sc.image, sc.cls, anomaly_sprite(rng, kind, size_px), yb, cx, ANOMALY)
        out |= m
    return out
