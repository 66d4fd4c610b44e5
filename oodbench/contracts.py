"""The one data contract every part of oodbench speaks.

* **Scores**: a float map per frame, *higher = more anomalous*. Any real range is allowed; NaN or
  infinite values are errors (they would make every curve metric meaningless).
* **Anomaly labels**: ``uint8`` map per frame with ``0`` = inlier, ``1`` = anomaly, ``255`` = ignore
  (void). Every dataset adapter maps its raw encoding to this; the evaluator checks it and names
  the frame when it is violated.
* **Closed-set labels** (optional): ``uint8`` train ids ``0..K-1``, ``255`` = ignore.
* **Images**: RGB ``uint8`` arrays of shape ``[H, W, 3]``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from oodbench.errors import OodbenchError

__all__ = [
    "INLIER",
    "ANOMALY",
    "IGNORE",
    "OOD_PASTE",
    "Frame",
    "ContractError",
    "check_labels",
]

INLIER = 0
ANOMALY = 1
IGNORE = 255
#: label used for pasted outlier-exposure objects during training (RPL convention).
OOD_PASTE = 254


class ContractError(OodbenchError, ValueError):
    """Input that violates the score/label contract; the message names the frame or file."""


@dataclass
class Frame:
    """One evaluation frame.

    Attributes:
        frame_id: stable id (the image file stem; LAF's ``_leftImg8bit`` suffix dropped).
        image: RGB ``uint8`` array ``[H, W, 3]``.
        label: anomaly labels ``uint8 [H, W]`` in {0, 1, 255}, or ``None`` when hidden (test splits).
        semantic: closed-set train ids ``uint8 [H, W]`` (255 ignore), when the benchmark has them.
        meta: adapter-specific facts (source paths, town, DDDD index, ...).
    """

    frame_id: str
    image: np.ndarray
    label: np.ndarray | None = None
    semantic: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.image.shape[0]), int(self.image.shape[1])


def check_labels(labels: np.ndarray, where: str) -> np.ndarray:
    """Validate an anomaly label map against the 0/1/255 contract; return it as ``uint8``.

    Raises:
        ContractError: naming ``where`` and the offending values.
    """
    arr = np.asarray(labels)
    if arr.dtype.kind not in "ui":
        if arr.dtype.kind == "b":
            arr = arr.astype(np.uint8)
        else:
            raise ContractError(f"{where}: labels must be an integer array, got dtype {arr.dtype}")
    if arr.size:
        # one uint8 pass accepts a valid map; the bincount below only names the bad values
        if arr.dtype != np.uint8:
            lo, hi = int(arr.min()), int(arr.max())
            if lo < 0 or hi > 255:
                raise ContractError(
                    f"{where}: unexpected label values (range {lo}..{hi}); allowed are "
                    "0 (inlier), 1 (anomaly), 255 (ignore)"
                )
            arr = arr.astype(np.uint8)
        if (np.add(arr, 1, dtype=np.uint8) <= 2).all():  # (v + 1) mod 256 <= 2 iff v in {255, 0, 1}
            return arr
        counts = np.bincount(arr.ravel(), minlength=256)
        bad = np.flatnonzero(counts[2:255]) + 2
        if bad.size:
            raise ContractError(
                f"{where}: unexpected label values {bad[:10].tolist()}; allowed are "
                "0 (inlier), 1 (anomaly), 255 (ignore)"
            )
    return arr

