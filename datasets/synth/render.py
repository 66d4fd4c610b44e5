"""Deterministic numpy/Pillow drawing primitives for the synthetic world.

Everything takes an explicit ``numpy.random.Generator``; nothing reads global random state, so a
frame depends only on its own ``default_rng([seed, split, index])``.  Images are float64 ``[H, W, 3]``
in 0..255 until :func:`to_uint8`.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    "value_noise",
    "fbm",
    "grain",
    "polygon_mask",
    "ellipse_mask",
    "rect_mask",
    "jitter_colour",
    "flat",
    "shade_vertical",
    "stripes",
    "checker",
    "dots",
    "to_uint8",
    "dilate",
]


def value_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Smooth noise in [0, 1]: a random grid every ``cell`` px, bilinearly interpolated."""
    cell = max(float(cell), 1.0)
    gh, gw = int(h / cell) + 2, int(w / cell) + 2
    g = rng.random((gh, gw))
    ys = np.arange(h) / cell
    xs = np.arange(w) / cell
    y0 = np.floor(ys).astype(np.intp)
    x0 = np.floor(xs).astype(np.intp)
    fy = (ys - y0)[:, None]
    fx = (xs - x0)[None, :]
    top = g[y0][:, x0] * (1 - fx) + g[y0][:, x0 + 1] * fx
    bot = g[y0 + 1][:, x0] * (1 - fx) + g[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bot * fy


def fbm(rng: np.random.Generator, h: int, w: int, cell: float, octaves: int = 3) -> np.ndarray:
    """Fractal noise in [0, 1]: ``octaves`` value-noise layers, each half the cell and weight."""
    out = np.zeros((h, w))
    total = 0.0
    amp = 1.0
    for _ in range(octaves):
        out += amp * value_noise(rng, h, w, cell)
        total += amp
        amp *= 0.5
        cell = max(cell / 2.0, 1.0)
    return out / total


def grain(rng: np.random.Generator, h: int, w: int, sigma: float) -> np.ndarray:
    """Per-pixel Gaussian noise ``[H, W, 1]`` (luminance grain)."""
    return rng.normal(0.0, sigma, (h, w, 1))


def polygon_mask(h: int, w: int, points: list[tuple[float, float]] | np.ndarray) -> np.ndarray:
    """Filled polygon from ``(x, y)`` vertices (Pillow rasteriser, no anti-aliasing)."""
    im = Image.new("L", (w, h), 0)
    pts = [(float(x), float(y)) for x, y in np.asarray(points, dtype=np.float64).reshape(-1, 2)]
    if len(pts) >= 3:
        ImageDraw.Draw(im).polygon(pts, fill=1)
    return np.asarray(im, dtype=bool)


def ellipse_mask(h: int, w: int, cy: float, cx: float, ry: float, rx: float, angle: float = 0.0) -> np.ndarray:
    """Filled (optionally rotated, radians) ellipse."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    dy, dx = yy - cy, xx - cx
    if angle:
        c, s = np.cos(angle), np.sin(angle)
        dx, dy = c * dx + s * dy, -s * dx + c * dy
    return (dy / max(ry, 0.5)) ** 2 + (dx / max(rx, 0.5)) ** 2 <= 1.0


def rect_mask(h: int, w: int, y0: float, x0: float, y1: float, x1: float) -> np.ndarray:
    """Axis-aligned box ``[y0, y1) x [x0, x1)`` clipped to the image."""
    m = np.zeros((h, w), bool)
    a, b = max(int(round(y0)), 0), min(int(round(y1)), h)
    c, d = max(int(round(x0)), 0), min(int(round(x1)), w)
    if a < b and c < d:
        m[a:b, c:d] = True
    return m


def jitter_colour(rng: np.random.Generator, colour, amount: float = 18.0) -> np.ndarray:
    """Base colour plus a per-instance random offset (clipped to 0..255)."""
    return np.clip(np.asarray(colour, np.float64) + rng.uniform(-amount, amount, 3), 0, 255)


def flat(h: int, w: int, colour) -> np.ndarray:
    """Constant-colour layer ``[H, W, 3]``."""
    return np.broadcast_to(np.asarray(colour, np.float64), (h, w, 3)).copy()


def shade_vertical(h: int, w: int, top: float, bottom: float) -> np.ndarray:
    """Multiplicative shading ``[H, W, 1]`` going linearly from ``top`` to ``bottom``."""
    t = np.linspace(0.0, 1.0, h)[:, None, None]
    return np.broadcast_to(top + (bottom - top) * t, (h, w, 1))


def stripes(h: int, w: int, period: float, angle: float, duty: float = 0.5, phase: float = 0.0) -> np.ndarray:
    """Boolean stripe pattern (``angle`` in radians, ``period`` in px)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    u = xx * np.cos(angle) + yy * np.sin(angle) + phase
    return np.mod(u / max(period, 1.0), 1.0) < duty


def checker(h: int, w: int, cell: float, angle: float = 0.0) -> np.ndarray:
    """Boolean checkerboard (optionally rotated)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * xx + s * yy, -s * xx + c * yy
    return (np.floor(u / cell) + np.floor(v / cell)).astype(np.int64) % 2 == 0


def dots(h: int, w: int, spacing: float, radius: float, angle: float = 0.0) -> np.ndarray:
    """Boolean polka-dot pattern on a (rotated) square lattice."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * xx + s * yy, -s * xx + c * yy
    du = np.mod(u, spacing) - spacing / 2
    dv = np.mod(v, spacing) - spacing / 2
    return du * du + dv * dv <= radius * radius


def dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """Binary dilation with a ``(2r+1)^2`` square (cumulative sums, exact)."""
    if r <= 0:
        return mask.copy()
    k = 2 * r + 1
    p = np.pad(mask.astype(np.int32), r)
    c = np.pad(np.cumsum(np.cumsum(p, axis=0), axis=1), ((1, 0), (1, 0)))
    s = c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]
    return s > 0


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Round and clip a float image to ``uint8``."""
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
