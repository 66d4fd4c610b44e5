"""Objects that never occur in the training scenes.

* **Anomalies** (evaluation frames only): animal-like bodies with fur, patch or stripe coats; traffic
  cones; cardboard boxes; striped crates; debris (clusters of shards in unnatural colours).
* **Outlier-exposure objects** (the synthetic COCO): a *different* family -- star, blob, polygon
  and cross outlines filled with checkerboards, polka dots, plaid, stripes, rings or hue noise in
  random saturated colours.  They share nothing specific with the anomalies except that they look
  like no training class, so a method has to learn "novel shape/texture", not a colour.

A sprite is ``(mask [h, w] bool, rgb [h, w, 3] float)``; :func:`paste` puts it into a scene.
"""
from __future__ import annotations

import colorsys

import numpy as np

from . import render as R

__all__ = ["ANOMALY_KINDS", "anomaly_sprite", "paste", "radial_polygon", "oe_texture", "random_hue_colour"]

ANOMALY_KINDS = ("animal", "cones", "box", "crate", "debris")

_COATS = ((120, 80, 45), (35, 28, 22), (225, 220, 205), (180, 140, 90), (130, 125, 120))


def random_hue_colour(rng: np.random.Generator, sat=(0.6, 1.0), val=(0.55, 1.0)) -> np.ndarray:
    """A random saturated RGB colour (any hue)."""
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(*sat), rng.uniform(*val))
    return np.array([r, g, b]) * 255.0


def _fur(rng, h, w, base) -> np.ndarray:
    streak = np.repeat(rng.random((h, w // 3 + 1)), 3, axis=1)[:, :w]
    n = 0.6 * streak + 0.4 * R.value_noise(rng, h, w, max(h / 5, 2))
    return np.asarray(base, float) * (0.75 + 0.5 * n[..., None])


def _animal(rng, size: float):
    hh = max(int(size), 8)
    ww = int(hh * rng.uniform(1.2, 1.7))
    m = R.ellipse_mask(hh, ww, 0.42 * hh, 0.5 * ww, 0.2 * hh, 0.33 * ww)
    facing = 1 if rng.random() < 0.5 else -1
    hx = 0.5 * ww + facing * 0.38 * ww
    m |= R.ellipse_mask(hh, ww, 0.22 * hh, hx, 0.1 * hh, 0.09 * ww, angle=0.4 * facing)
    m |= R.polygon_mask(hh, ww, [(0.5 * ww + facing * 0.22 * ww, 0.3 * hh), (hx, 0.18 * hh),
                                 (hx, 0.32 * hh), (0.5 * ww + facing * 0.25 * ww, 0.5 * hh)])
    for fx in (0.25, 0.35, 0.65, 0.75):
        m |= R.rect_mask(hh, ww, 0.5 * hh, fx * ww - 0.03 * ww, hh, fx * ww + 0.03 * ww)
    m |= R.polygon_mask(hh, ww, [(0.5 * ww - facing * 0.32 * ww, 0.38 * hh), (0.5 * ww - facing * 0.42 * ww, 0.7 * hh),
                                 (0.5 * ww - facing * 0.4 * ww, 0.71 * hh)])
    coat = rng.integers(3)
    if coat == 0:
        tex = _fur(rng, hh, ww, _COATS[int(rng.integers(len(_COATS)))])
    elif coat == 1:  # black / white patches
        patches = R.value_noise(rng, hh, ww, max(hh / 4, 2)) > 0.5
        tex = np.where(patches[..., None], _fur(rng, hh, ww, (230, 228, 220)), _fur(rng, hh, ww, (30, 25, 22)))
    else:  # warped stripes
        yy, xx = np.mgrid[0:hh, 0:ww].astype(float)
        warp = 3 * np.sin(yy / max(hh / 6, 1)) + 4 * R.value_noise(rng, hh, ww, max(hh / 3, 2))
        st = np.mod((xx + warp) / max(ww / 14, 2), 1.0) < 0.5
        tex = np.where(st[..., None], (235, 232, 225), (25, 22, 20)).astype(float)
    return m, tex


def _cone(rng, size: float):
    hh = max(int(size), 6)
    ww = max(int(hh * 0.7), 4)
    m = R.polygon_mask(hh, ww, [(0.42 * ww, 0), (0.58 * ww, 0), (0.8 * ww, 0.88 * hh), (0.2 * ww, 0.88 * hh)])
    base = R.rect_mask(hh, ww, 0.88 * hh, 0, hh, ww)
    yy = np.mgrid[0:hh, 0:ww][0] / hh
    bands = ((yy > 0.3) & (yy < 0.42)) | ((yy > 0.58) & (yy < 0.7))
    tex = np.where(bands[..., None], (240, 240, 235), (245, 100, 25)).astype(float)
    tex = np.where(base[..., None], (30, 30, 30), tex)
    return m | base, tex * (0.9 + 0.2 * R.value_noise(rng, hh, ww, 4)[..., None])


def _cones(rng, size: float):
    n = int(rng.integers(2, 4))
    ww = int(size * (0.75 * n + 0.3))
    hh = max(int(size), 6)
    m = np.zeros((hh, ww), bool)
    tex = np.zeros((hh, ww, 3))
    for i in range(n):
        s = size * rng.uniform(0.7, 1.0)
        cm, ct = _cone(rng, s)
        y0, x0 = hh - cm.shape[0], min(int(i * 0.75 * size), ww - cm.shape[1])
        sl = (slice(y0, y0 + cm.shape[0]), slice(x0, x0 + cm.shape[1]))
        tex[sl][cm] = ct[cm]
        m[sl] |= cm
    return m, tex


def _box(rng, size: float, crate: bool):
    hh = max(int(size), 6)
    ww = int(hh * rng.uniform(1.0, 1.8))
    m = np.ones((hh, ww), bool)
    if crate:  # diagonal warning stripes
        st = R.stripes(hh, ww, max(hh / 4, 3), rng.uniform(0.6, 1.0), 0.5)
        tex = np.where(st[..., None], (235, 200, 20), (20, 20, 20)).astype(float)
    else:  # cardboard with a tape strip and a darker side face
        tex = R.flat(hh, ww, (165, 120, 70) + rng.uniform(-15, 15, 3)) * (0.9 + 0.2 * R.value_noise(rng, hh, ww, 3)[..., None])
        tex[:, int(0.45 * ww):int(0.55 * ww)] = (200, 180, 140)
        tex[:, int(0.8 * ww):] *= 0.7
    return m, tex


def radial_polygon(rng: np.random.Generator, cx: float, cy: float, r: float, n: int, spikiness: float) -> np.ndarray:
    """Vertices ``[n, 2]`` (x, y) of a star-like polygon with random radii (irregularity ``spikiness``)."""
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = r * (1 - spikiness * rng.random(n))
    return np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], axis=1)


def _debris(rng, size: float):
    hh = max(int(size), 6)
    ww = int(hh * rng.uniform(1.5, 2.5))
    m = np.zeros((hh, ww), bool)
    tex = np.zeros((hh, ww, 3))
    for _ in range(int(rng.integers(3, 7))):
        r = rng.uniform(0.15, 0.35) * hh
        poly = radial_polygon(rng, rng.uniform(r, ww - r), rng.uniform(r, hh - r), r, int(rng.integers(3, 7)), 0.6)
        pm = R.polygon_mask(hh, ww, poly)
        col = random_hue_colour(rng, (0.5, 1.0), (0.4, 1.0))
        tex[pm] = col * (0.85 + 0.3 * rng.random())
        m |= pm
    return m, tex + R.grain(rng, hh, ww, 6)


def anomaly_sprite(rng: np.random.Generator, kind: str, size: float) -> tuple[np.ndarray, np.ndarray]:
    """An anomaly sprite about ``size`` px tall; ``kind`` in :data:`ANOMALY_KINDS`."""
    if kind == "animal":
        return _animal(rng, size)
    if kind == "cones":
        return _cones(rng, size)
    if kind in ("box", "crate"):
        return _box(rng, size, crate=kind == "crate")
    if kind == "debris":
        return _debris(rng, size)
    raise ValueError(f"unknown anomaly kind {kind!r}; expected one of {ANOMALY_KINDS}")


def paste(image: np.ndarray, cls: np.ndarray, sprite: tuple[np.ndarray, np.ndarray], bottom: float,
          cx: float, cls_id: int, shadow: bool = True) -> np.ndarray:
    """Paste ``sprite`` with its bottom-centre at ``(bottom, cx)``; returns the full-size mask painted.

    A soft contact shadow darkens the ground under the object (the shadow keeps the ground's class).
    """
    h, w = cls.shape
    m, tex = sprite
    sh, sw = m.shape
    y0, x0 = int(round(bottom)) - sh, int(round(cx)) - sw // 2
    full = np.zeros((h, w), bool)
    ys, xs = slice(max(y0, 0), min(y0 + sh, h)), slice(max(x0, 0), min(x0 + sw, w))
    if ys.start >= ys.stop or xs.start >= xs.stop:
        return full
    sub = (slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0))
    full[ys, xs] = m[sub]
    if shadow:
        sh_mask = R.ellipse_mask(h, w, bottom, cx, max(sh * 0.06, 1.0), sw * 0.55) & ~full
        image[sh_mask] *= 0.7
    image[ys, xs][m[sub]] = tex[sub][m[sub]]
    cls[full] = cls_id
    return full


def oe_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Fill texture of an outlier-exposure object: one of checker, dots, plaid, stripes, rings, hue noise."""
    a, b = random_hue_colour(rng), random_hue_colour(rng)
    kind = int(rng.integers(6))
    cell = rng.uniform(4, 16)
    ang = rng.uniform(0, np.pi)
    if kind == 0:
        pat = R.checker(h, w, cell, ang)
    elif kind == 1:
        pat = R.dots(h, w, cell * 1.5, cell * 0.5, ang)
    elif kind == 2:
        pat = R.stripes(h, w, cell, ang, 0.3) | R.stripes(h, w, cell * 1.3, ang + np.pi / 2, 0.3)
    elif kind == 3:
        pat = R.stripes(h, w, cell, ang, rng.uniform(0.3, 0.7))
    elif kind == 4:
        yy, xx = np.mgrid[0:h, 0:w].astype(float)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        pat = np.mod(np.hypot(yy - cy, xx - cx) / cell, 1.0) < 0.5
    else:
        hue = R.value_noise(rng, h, w, cell * 2)
        out = np.empty((h, w, 3))
        for i, ch in enumerate((0.0, 1 / 3, 2 / 3)):
            out[..., i] = 128 + 110 * np.cos(2 * np.pi * (hue + ch))
        return out
    return np.where(pat[..., None], a, b) * (0.85 + 0.3 * R.value_noise(rng, h, w, 8)[..., None])
