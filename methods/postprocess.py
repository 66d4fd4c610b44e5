"""Post-processes that wrap any method: ``--postprocess ground-focus``.

Ground-Focus (RPL+CoroCL supplementary §B, the grey row of Table 1, after NFlowJS): "merges all road
and sidewalk pixels to a common 'ground' class by creating a convex hull that encapsulates all such
pixels.  During inference, all the pixels outside this hull will be ignored."  Here, per image:

1. ``ground`` = pixels whose closed-set prediction ``argmax(logits)`` is road (train id 0) or
   sidewalk (1);
2. *inside* = pixels whose centre lies in the closed convex hull of the ground pixels' centres
   (integer coordinates; the hull from ``scipy.spatial.ConvexHull`` on the leftmost and rightmost
   ground pixel of every row, which are the only possible hull vertices; rows are then filled
   between the exact hull boundary crossings, so ground pixels on the hull's edge count as inside);
3. the anomaly score outside is set to the **minimum score of that image**; inside it is returned
   bit-identical.

Why the image minimum and not the batch minimum: the paper leaves "ignored" unspecified, and the
harness stores one score map per frame; a batch-level minimum would make a frame's scores depend on
which frames share its batch (and on ``--batch-size``).  With the image minimum, ignored pixels tie
with the least anomalous pixel of their frame; they never outrank a pixel inside the hull.

Degenerate cases: no ground pixel -> the hull is empty and the whole frame is set to its minimum
(a constant map: nothing in it is detected, as the literal rule implies); one ground pixel, or all
ground pixels on one line -> the hull is that point / segment, and only the pixels whose centres lie
exactly on it are inside.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from oodbench.errors import UsageError

from .base import Method

__all__ = ["GroundFocus", "POSTPROCESSES", "apply_postprocess", "ground_hull_mask"]

#: Cityscapes train ids merged into "ground"
GROUND_TRAIN_IDS = (0, 1)


def _hull_vertices(points: np.ndarray) -> np.ndarray:
    """Hull vertices (counter-clockwise, int64 ``[V, 2]`` of ``(x, y)``) of integer points; for
    collinear input the two extreme points, for a single point that point."""
    from scipy.spatial import ConvexHull, QhullError

    uniq = np.unique(points, axis=0)
    if len(uniq) >= 3:
        try:
            return uniq[ConvexHull(uniq).vertices]
        except QhullError:  # all on one line
            pass
    order = np.lexsort((uniq[:, 1], uniq[:, 0]))
    return uniq[order[[0, -1]]] if len(uniq) > 1 else uniq


def ground_hull_mask(ground: np.ndarray) -> np.ndarray:
    """Boolean ``[H, W]``: pixels whose centre lies in the closed convex hull of ``ground``'s pixels."""
    h, w = ground.shape
    inside = np.zeros((h, w), bool)
    rows = np.flatnonzero(ground.any(axis=1))
    if rows.size == 0:
        return inside
    g = ground[rows]
    left = np.argmax(g, axis=1)
    right = w - 1 - np.argmax(g[:, ::-1], axis=1)
    pts = np.concatenate([np.stack([left, rows], 1), np.stack([right, rows], 1)]).astype(np.int64)
    verts = _hull_vertices(pts)
    if len(verts) == 1:
        inside[verts[0, 1], verts[0, 0]] = True
        return inside
    # edges of the closed polygon (a segment is one edge)
    a = verts if len(verts) > 2 else verts[:1]
    b = np.roll(verts, -1, axis=0) if len(verts) > 2 else verts[1:]
    y0, y1 = int(verts[:, 1].min()), int(verts[:, 1].max())
    ys = np.arange(y0, y1 + 1, dtype=np.int64)[:, None]                       # [R, 1]
    ax, ay, bx, by = a[:, 0][None], a[:, 1][None], b[:, 0][None], b[:, 1][None]  # [1, E]
    spans = (np.minimum(ay, by) <= ys) & (ys <= np.maximum(ay, by))
    flat = ay == by
    dy = np.where(flat, 1, by - ay)
    # exact crossing x of non-horizontal edges (float division of exact integers: the ceil / floor
    # below are exact because a non-integer quotient is >= 1/|dy| away from any integer)
    x = ax + (ys - ay) * (bx - ax) / dy
    lo = np.where(spans, np.where(flat, np.minimum(ax, bx), x), np.inf).min(axis=1)
    hi = np.where(spans, np.where(flat, np.maximum(ax, bx), x), -np.inf).max(axis=1)
    xl, xr = np.ceil(lo), np.floor(hi)
    cols = np.arange(w)[None, :]
    inside[y0:y1 + 1] = (cols >= xl[:, None]) & (cols <= xr[:, None])
    return inside


class GroundFocus(Method):
    """Ground-Focus wrapper: scores outside the road+sidewalk convex hull set to the image minimum.

    Args:
        inner: any method (its ``predict`` must return Cityscapes-19 closed-set logits).

    Everything else -- the declared contract (``pretrained_cfg``, ``preprocessing``,
    ``semantic_label_space``, ``untrained_reason``), the checkpoint and fitted-state sha256, ``fit``,
    the fitted state, ``to`` -- passes through to ``inner``; ``hparams()`` adds
    ``{"postprocess": "ground-focus"}``.
    """

    name = "ground-focus"
    paper = "Liu et al., ICCV 2023 (RPL) supplementary §B; Grcić et al., VISAPP 2022 (NFlowJS)"

    def __init__(self, inner: Method) -> None:  # no super().__init__: the device is the inner one's
        self.inner = inner

    def __getattr__(self, item: str) -> Any:
        if item == "inner":  # not yet set (e.g. during unpickling)
            raise AttributeError(item)
        return getattr(self.inner, item)

    @property
    def device(self) -> torch.device:  # type: ignore[override]
        return self.inner.device

    @property
    def requires_fit(self) -> bool:  # type: ignore[override]
        return self.inner.requires_fit

    @property
    def checkpoint_sha256(self) -> str | None:
        return self.inner.checkpoint_sha256

    @property
    def pretrained_cfg(self):  # type: ignore[override]
        return self.inner.pretrained_cfg

    @property
    def fitted_state_sha256(self) -> str | None:  # type: ignore[override]
        return self.inner.fitted_state_sha256

    @property
    def selected_on(self) -> str | None:  # type: ignore[override]
        return self.inner.selected_on

    @property
    def registry_name(self) -> str | None:  # type: ignore[override]
        return self.inner.registry_name

    @registry_name.setter
    def registry_name(self, value: str | None) -> None:
        self.inner.registry_name = value

    @fitted_state_sha256.setter
    def fitted_state_sha256(self, value: str | None) -> None:
        self.inner.fitted_state_sha256 = value

    @property
    def semantic_label_space(self) -> str | None:
        return self.inner.semantic_label_space

    def preprocessing(self):
        return self.inner.preprocessing()

    def untrained_reason(self) -> str | None:
        return self.inner.untrained_reason()

    def state_dict_fitted(self) -> dict[str, torch.Tensor]:
        return self.inner.state_dict_fitted()

    def load_fitted(self, state: dict[str, torch.Tensor]) -> "GroundFocus":
        self.inner.load_fitted(state)
        return self

    def hparams(self) -> dict[str, Any]:
        hp = dict(self.inner.hparams())
        prev = hp.get("postprocess")
        hp["postprocess"] = f"{prev}+ground-focus" if prev else "ground-focus"
        return hp

    def to(self, device: str | torch.device) -> "GroundFocus":
        self.inner.to(device)
        return self

    def fit(self, *args: Any, **kwargs: Any) -> "GroundFocus":
        self.inner.fit(*args, **kwargs)
        return self

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        anomaly, logits = self.inner.predict(x)
        return self.focus(anomaly, logits), logits

    @staticmethod
    def focus(anomaly: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Apply Ground-Focus to ``anomaly [B,H,W]`` given the closed-set ``logits [B,C,H,W]``."""
        if anomaly.ndim != 3 or logits.ndim != 4 or anomaly.shape != logits.shape[:1] + logits.shape[2:]:
            raise ValueError(f"ground-focus: anomaly {tuple(anomaly.shape)} and logits {tuple(logits.shape)} "
                             "must be [B,H,W] and [B,C,H,W] of the same size")
        pred = logits.argmax(dim=1)
        ground = torch.zeros_like(pred, dtype=torch.bool)
        for tid in GROUND_TRAIN_IDS:
            ground |= pred == tid
        masks = np.stack([ground_hull_mask(g) for g in ground.cpu().numpy()])
        inside = torch.from_numpy(masks).to(anomaly.device)
        floor = anomaly.flatten(1).amin(dim=1).view(-1, 1, 1)
        return torch.where(inside, anomaly, floor.expand_as(anomaly))

    def __repr__(self) -> str:
        return f"GroundFocus({self.inner!r})"


#: ``--postprocess`` name -> wrapper class
POSTPROCESSES: dict[str, Callable[[Method], Method]] = {"ground-focus": GroundFocus}


def apply_postprocess(method: Method, name: str | None) -> Method:
    """``method`` wrapped by the post-process ``name`` (``None``/``"none"``: unchanged).

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    if name is None or name == "none":
        return method
    if name not in POSTPROCESSES:
        raise UsageError(f"--postprocess: unknown post-process {name!r}; choose from none, {', '.join(POSTPROCESSES)}")
    return POSTPROCESSES[name](method)
