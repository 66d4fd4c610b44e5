"""A tiny perspective street-scene painter: sky, buildings, vegetation, terrain, walls, fences,
sidewalks, road with lane markings, poles with signs, cars, persons, unknown static objects and an
optional ego-vehicle hood.

The camera looks down a (possibly curved) road; ``ppm(y)`` (pixels per metre at image row ``y``)
grows linearly below the horizon, so objects shrink with distance.  Every element is painted into
both the RGB canvas and the internal class map (:mod:`.world`), so labels match pixels exactly.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import render as R
from .world import (BUILDING, CAR, EGO, FENCE, LANE, PERSON, POLE, ROAD, SIDEWALK, SIGN, SKY, STATIC,
                    TERRAIN, VEGETATION, WALL, WORLD_CLASSES)

__all__ = ["Style", "STYLES", "Scene", "make_scene"]

ROAD_STYLES = {  # base colour, grain, pattern
    "asphalt": ((85, 85, 90), 7.0, None),
    "dark": ((55, 55, 60), 6.0, None),
    "grey": ((120, 120, 122), 6.0, None),
    "gravel": ((125, 112, 95), 16.0, None),
    "paving": ((110, 100, 100), 6.0, "tiles"),
}


@dataclass(frozen=True)
class Style:
    """Rendering style: ``grain`` per-pixel noise, ``texture`` strength of class textures, palettes."""

    name: str
    grain: float
    texture: float
    building_colours: tuple
    car_colours: tuple
    sky: tuple


STYLES = {
    "city": Style("city", 4.0, 1.0,
                  ((120, 110, 100), (150, 130, 110), (95, 95, 100), (160, 150, 135), (130, 90, 75)),
                  ((40, 60, 150), (150, 30, 30), (200, 200, 205), (30, 30, 32), (140, 145, 150), (60, 90, 60)),
                  (120, 165, 215)),
    # CARLA-like towns: flat shading, little noise, their own palettes
    "t5": Style("t5", 1.0, 0.35,
                ((190, 140, 100), (200, 175, 120), (170, 120, 90)),
                ((200, 40, 40), (230, 200, 50), (40, 40, 45)), (150, 185, 225)),
    "t6": Style("t6", 1.0, 0.35,
                ((110, 125, 150), (140, 150, 165), (90, 100, 120)),
                ((30, 90, 170), (220, 220, 225), (60, 60, 65)), (175, 195, 215)),
}


@dataclass
class Scene:
    """A painted scene: ``image`` float ``[H, W, 3]``, ``cls`` internal class map, geometry helpers."""

    image: np.ndarray
    cls: np.ndarray
    horizon: int
    k: float                      # ppm(y) = k * (y - horizon)
    centre: np.ndarray            # road centre x per row
    half_m: float                 # road half width in metres
    style: Style
    occupied: np.ndarray = field(default=None)  # things (cars, persons, statics) painted so far

    @property
    def shape(self) -> tuple[int, int]:
        return self.cls.shape

    def ppm(self, y: float) -> float:
        return max(self.k * (y - self.horizon), 0.0)

    def paint(self, mask: np.ndarray, cls_id: int, texture: np.ndarray) -> None:
        """Paint ``texture`` (``[H, W, 3]`` or a colour) where ``mask`` and set the class."""
        if not mask.any():
            return
        tex = np.broadcast_to(np.asarray(texture, np.float64), self.image.shape)
        self.image[mask] = tex[mask]
        self.cls[mask] = cls_id

    @property
    def road(self) -> np.ndarray:
        return (self.cls == ROAD) | (self.cls == LANE)


def _textured(rng, h, w, colour, style: Style, cell=6.0, amount=30.0, grain=6.0) -> np.ndarray:
    t = style.texture
    n = R.fbm(rng, h, w, cell, 3)[..., None] - 0.5
    return R.flat(h, w, colour) + t * (amount * n + R.grain(rng, h, w, grain))


def make_scene(rng: np.random.Generator, h: int, w: int, *, style: str = "city", road_style: str = "asphalt",
               traffic: float = 1.0, persons: float = 1.0, statics: int = 0, ego: bool = False,
               low_camera: bool = False, curve: float | None = None, lanes: int = 1) -> Scene:
    """Paint one street scene.

    Args:
        style: ``"city"`` (Cityscapes-like) or ``"t5"``/``"t6"`` (CARLA-like towns).
        road_style: key of :data:`ROAD_STYLES`.
        traffic / persons: expected number of cars / persons (Poisson means, scaled).
        statics: number of unknown static objects (internal class ``static``: void / "other").
        ego: draw the ego-vehicle hood at the bottom.
        low_camera: obstacle-track framing (lower horizon, road fills more of the image).
        lanes: lanes per direction (road half width = 3.5 m per lane).
    """
    st = STYLES[style]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    hz = int(h * (rng.uniform(0.28, 0.36) if low_camera else rng.uniform(0.36, 0.47)))
    half_m = 3.5 * lanes
    hw_bottom = w * (rng.uniform(0.55, 0.8) if low_camera else rng.uniform(0.3, 0.5))
    k = hw_bottom / (half_m * (h - hz))
    vp = w * rng.uniform(0.42, 0.58)
    cb = w * 0.5 + w * rng.uniform(-0.08, 0.08)
    curve = rng.uniform(-0.25, 0.25) if curve is None else curve
    rows = np.arange(h, dtype=np.float64)
    t = np.clip((rows - hz) / (h - hz), 0.0, 1.0)
    centre = vp + (cb - vp) * t + curve * w * t * (1 - t)
    ppm_rows = k * np.maximum(rows - hz, 0.0)
    sc = Scene(np.zeros((h, w, 3)), np.zeros((h, w), np.uint8), hz, k, centre, half_m, st,
               np.zeros((h, w), bool))
    below = yy >= hz
    lat = (xx - centre[:, None]) / np.maximum(ppm_rows[:, None], 1e-6)  # lateral metres of each pixel

    # sky: vertical gradient + soft clouds
    sky = np.asarray(R.jitter_colour(rng, st.sky, 15))
    grad = R.shade_vertical(h, w, 0.85, 1.2)
    clouds = R.value_noise(rng, h, w, w / 6)[..., None]
    sc.paint(np.ones((h, w), bool), SKY, R.flat(h, w, sky) * grad + st.texture * 35 * np.clip(clouds - 0.55, 0, 1))

    # ground beyond the sidewalks: terrain (grass) with vegetation patches
    ground = _textured(rng, h, w, R.jitter_colour(rng, WORLD_CLASSES[TERRAIN].colour), st, 5, 40, 6)
    sc.paint(below, TERRAIN, ground)

    sw_m = [rng.uniform(2.0, 4.0), rng.uniform(2.0, 4.0)]  # left, right sidewalk widths
    # buildings on each side (columns from the image edge towards the vanishing point)
    for side, sw in ((-1, sw_m[0]), (1, sw_m[1])):
        L = half_m + sw + rng.uniform(0.0, 2.0)
        slope = (cb - vp) / (h - hz) + side * L * k  # x - vp = slope * (y_b - hz)
        yb = hz + (xx[0] - vp) / slope
        valid = yb > hz + 1
        edges = [0.0]
        while edges[-1] < 1.8:
            edges.append(edges[-1] + rng.uniform(0.12, 0.4))
        depth = np.clip((yb - hz) / (h - hz), 0, 3)  # 0 far .. >=1 near (columns)
        for a, b in zip(edges[:-1], edges[1:]):
            # segments in "depth" space: near segments are wide on screen
            seg = valid & (depth ** 0.5 >= a) & (depth ** 0.5 < b)
            if not seg.any() or rng.random() < 0.15:
                continue  # a gap: sky and vegetation show through
            height_m = rng.uniform(7.0, 24.0)
            top = hz + (yb - hz) * (1 - height_m * k)
            mask = seg[None, :] & (yy >= top[None, :])
            col = R.jitter_colour(rng, st.building_colours[int(rng.integers(len(st.building_colours)))], 12)
            tex = _textured(rng, h, w, col, st, 4, 25, 5)
            # windows on a 3 m x 3.2 m facade grid
            dist = np.where(valid, (h - hz) / np.maximum(yb - hz, 1e-3), 0.0) * 6.0
            hgt = (yb[None, :] - yy) / np.maximum(k * (yb[None, :] - hz), 1e-6)
            win = (np.mod(hgt / 3.2, 1.0) > 0.35) & (np.mod(hgt / 3.2, 1.0) < 0.8) & \
                  (np.mod(dist[None, :] / 3.0 + a, 1.0) < 0.5) & (hgt > 1.0)
            glass = R.jitter_colour(rng, (60, 75, 95), 15)
            tex = np.where(win[..., None], glass + st.texture * 10 * (R.value_noise(rng, h, w, 3)[..., None] - 0.5), tex)
            sc.paint(mask, BUILDING, tex)
        # a wall or fence along part of the sidewalk's outer edge
        if rng.random() < 0.5:
            Lw = half_m + sw
            slope_w = (cb - vp) / (h - hz) + side * Lw * k
            ybw = hz + (xx[0] - vp) / slope_w
            d = np.clip((ybw - hz) / (h - hz), 0, 3)
            a = rng.uniform(0.0, 0.6)
            seg = (ybw > hz + 1) & (d >= a) & (d < a + rng.uniform(0.2, 0.6))
            hm = rng.uniform(0.8, 2.0)
            topw = hz + (ybw - hz) * (1 - hm * k)
            mask = seg[None, :] & (yy >= topw[None, :]) & (yy < ybw[None, :])
            if rng.random() < 0.5:
                tex = _textured(rng, h, w, R.jitter_colour(rng, WORLD_CLASSES[WALL].colour), st, 3, 20, 5)
                tex = tex * np.where(R.stripes(h, w, 5, np.pi / 2, 0.15)[..., None], 0.8, 1.0)
                sc.paint(mask, WALL, tex)
            else:
                slats = R.stripes(h, w, 4, 0.0, 0.5)
                tex = np.where(slats[..., None], R.jitter_colour(rng, WORLD_CLASSES[FENCE].colour), (70, 60, 50))
                sc.paint(mask & slats, FENCE, tex)

    # trees: textured canopies along the sidewalks
    for _ in range(int(rng.poisson(2.0))):
        side = -1 if rng.random() < 0.5 else 1
        yb = rng.uniform(hz + 2, hz + 0.6 * (h - hz))
        p = sc.ppm(yb)
        cx = np.interp(yb, rows, centre) + side * (half_m + sw_m[side > 0] + 0.5) * p
        r = rng.uniform(1.8, 3.5) * p
        cy = yb - rng.uniform(4.0, 6.0) * p
        blob = R.ellipse_mask(h, w, cy, cx, r * 0.9, r) & (R.value_noise(rng, h, w, max(r / 2, 2)) > 0.3)
        blob |= R.rect_mask(h, w, cy, cx - 0.15 * p, yb, cx + 0.15 * p)  # trunk: vegetation in Cityscapes
        leaves = _textured(rng, h, w, R.jitter_colour(rng, WORLD_CLASSES[VEGETATION].colour, 15), st, 2, 60, 10)
        sc.paint(blob, VEGETATION, leaves)

    # sidewalks and road (painted over the ground and building bases)
    for side, sw in ((-1, sw_m[0]), (1, sw_m[1])):
        m = below & (side * lat >= half_m) & (side * lat < half_m + sw)
        tex = _textured(rng, h, w, R.jitter_colour(rng, WORLD_CLASSES[SIDEWALK].colour, 12), st, 4, 20, 5)
        tex = tex * np.where(np.mod(lat, 1.2)[..., None] < 0.08, 0.85, 1.0)  # paving joints
        sc.paint(m, SIDEWALK, tex)
    base, g, pattern = ROAD_STYLES[road_style]
    road = below & (np.abs(lat) < half_m)
    tex = _textured(rng, h, w, R.jitter_colour(rng, base, 8), st, 8, 25, g)
    if pattern == "tiles":
        tex = tex * np.where((np.mod(lat, 0.8) < 0.08)[..., None], 0.8, 1.0)
    sc.paint(road, ROAD, tex)
    # lane markings: dashed centre line(s) and solid edge lines (Cityscapes: road, StreetHazards: road line)
    dist = (h - hz) / np.maximum(yy - hz, 1e-3)
    dashes = np.mod(dist * 2.0, 1.0) < 0.5
    marks = road & (np.abs(lat) < 0.08) & dashes
    marks |= road & (np.abs(np.abs(lat) - (half_m - 0.3)) < 0.08)
    if lanes > 1:
        marks |= road & (np.abs(np.abs(lat) - 3.5) < 0.08) & dashes
    sc.paint(marks, LANE, R.flat(h, w, R.jitter_colour(rng, WORLD_CLASSES[LANE].colour, 10)))

    # poles with signs on the sidewalks
    for _ in range(int(rng.poisson(1.5))):
        side = -1 if rng.random() < 0.5 else 1
        yb = rng.uniform(hz + 3, h - 2)
        p = sc.ppm(yb)
        cx = np.interp(yb, rows, centre) + side * (half_m + 0.6) * p
        hm = rng.uniform(3.5, 6.0)
        pw = max(0.12 * p, 0.6)
        pole = R.rect_mask(h, w, yb - hm * p, cx - pw, yb, cx + pw)
        sc.paint(pole, POLE, R.flat(h, w, R.jitter_colour(rng, WORLD_CLASSES[POLE].colour, 10)))
        if rng.random() < 0.7:
            s = 0.35 * p
            sign = R.rect_mask(h, w, yb - hm * p - s, cx - s, yb - hm * p + s, cx + s)
            sc.paint(sign, SIGN, R.flat(h, w, R.jitter_colour(rng, WORLD_CLASSES[SIGN].colour, 20)))

    # things, far to near: statics (void), persons on sidewalks, cars on the road
    things = []
    for _ in range(statics):
        things.append(("static", rng.uniform(hz + 4, h - 3)))
    for _ in range(int(rng.poisson(1.5 * persons))):
        things.append(("person", rng.uniform(hz + 4, h - 3)))
    for _ in range(int(rng.poisson(2.0 * traffic))):
        things.append(("car", rng.uniform(hz + 3, h - 3)))
    for kind, yb in sorted(things, key=lambda t: t[1]):
        _paint_thing(rng, sc, kind, yb, sw_m, rows)

    if ego:
        hood = R.ellipse_mask(h, w, h + 0.05 * h, w / 2, 0.17 * h, 0.7 * w)
        sc.paint(hood, EGO, R.flat(h, w, (35, 35, 40)) * R.shade_vertical(h, w, 1.4, 0.9))

    # global exposure / white balance and sensor grain
    sc.image = sc.image * rng.uniform(0.85, 1.12) + rng.uniform(-6, 6, 3) + R.grain(rng, h, w, st.grain)
    return sc


def _paint_thing(rng, sc: Scene, kind: str, yb: float, sw_m, rows) -> None:
    h, w = sc.shape
    st = sc.style
    p = sc.ppm(yb)
    c = float(np.interp(yb, rows, sc.centre))
    if kind == "car":
        lane = rng.choice([-0.5, 0.5, -0.95, 0.95]) * sc.half_m
        cx = c + lane * p
        bw, bh = 1.8 * p / 2, 1.5 * p
        body = R.rect_mask(h, w, yb - 0.9 * bh / 1.5, cx - bw, yb - 0.15 * p, cx + bw)
        cabin = R.polygon_mask(h, w, [(cx - 0.75 * bw, yb - 0.6 * p), (cx + 0.75 * bw, yb - 0.6 * p),
                                      (cx + 0.6 * bw, yb - bh), (cx - 0.6 * bw, yb - bh)])
        wheels = R.rect_mask(h, w, yb - 0.3 * p, cx - bw * 0.95, yb, cx - bw * 0.55) | \
            R.rect_mask(h, w, yb - 0.3 * p, cx + bw * 0.55, yb, cx + bw * 0.95)
        col = R.jitter_colour(rng, st.car_colours[int(rng.integers(len(st.car_colours)))], 15)
        tex = R.flat(h, w, col) * R.shade_vertical(h, w, 1.15, 0.85) + st.texture * R.grain(rng, h, w, 3)
        window = cabin & ~R.rect_mask(h, w, yb - bh, cx - 0.9 * bw, yb - bh + 0.12 * p, cx + 0.9 * bw)
        tex = np.where(window[..., None], (45, 55, 70), tex)
        lights = (R.rect_mask(h, w, yb - 0.75 * p, cx - bw, yb - 0.6 * p, cx - 0.7 * bw)
                  | R.rect_mask(h, w, yb - 0.75 * p, cx + 0.7 * bw, yb - 0.6 * p, cx + bw))
        tex = np.where(lights[..., None], (200, 40, 30), tex)
        tex = np.where(wheels[..., None], (20, 20, 22), tex)
        m = body | cabin | wheels
        sc.paint(m, CAR, tex)
    elif kind == "person":
        side = -1 if rng.random() < 0.5 else 1
        cx = c + side * (sc.half_m + rng.uniform(0.3, min(sw_m[side > 0], 2.5))) * p
        hh = rng.uniform(1.6, 1.9) * p
        ww = 0.25 * p
        head = R.ellipse_mask(h, w, yb - hh + 0.11 * p, cx, 0.11 * p, 0.09 * p)
        torso = R.rect_mask(h, w, yb - hh + 0.2 * p, cx - ww, yb - 0.85 * p, cx + ww)
        legs = R.rect_mask(h, w, yb - 0.85 * p, cx - 0.8 * ww, yb, cx - 0.1 * ww) | \
            R.rect_mask(h, w, yb - 0.85 * p, cx + 0.1 * ww, yb, cx + 0.8 * ww)
        shirt = R.jitter_colour(rng, [(160, 80, 70), (60, 70, 120), (200, 200, 190), (50, 50, 50)][int(rng.integers(4))], 20)
        tex = np.where(head[..., None], R.jitter_colour(rng, (200, 160, 130), 20),
                       np.where(torso[..., None], shirt, R.jitter_colour(rng, (50, 50, 70), 10)))
        sc.paint(head | torso | legs, PERSON, tex + st.texture * R.grain(rng, h, w, 4))
    else:  # static: a dull bin / cabinet standing off the road (void in Cityscapes, "other" in SH)
        side = -1 if rng.random() < 0.5 else 1
        cx = c + side * (sc.half_m + rng.uniform(0.5, 2.0)) * p
        bw, bh = rng.uniform(0.3, 0.7) * p, rng.uniform(0.8, 1.4) * p
        m = R.rect_mask(h, w, yb - bh, cx - bw, yb, cx + bw)
        tex = R.flat(h, w, R.jitter_colour(rng, WORLD_CLASSES[STATIC].colour, 12)) * R.shade_vertical(h, w, 1.1, 0.9)
        sc.paint(m, STATIC, tex)
