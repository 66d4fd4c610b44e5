"""Input normalisation: the one definition shared by ``oodbench run``, ``oodbench fit``, the
Fishyscapes container and plugin authors.

A method declares its :class:`Normalisation` (``Method.preprocessing()``, from its
``pretrained_cfg``); :func:`normaliser` turns it into the function the runner applies to every
batch of uint8 RGB frames, and :func:`normalise` applies it to images at hand, so a plugin's own
tests feed ``predict`` exactly what ``oodbench run`` would::

    from oodbench.preprocess import normalise
    x = normalise(rgb_uint8_hwc, method)          # [1,3,H,W] float32
    anomaly, logits = method.predict(x)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from .segmenters.base import IMAGENET_MEAN, IMAGENET_STD

if TYPE_CHECKING:
    from .methods import Method

__all__ = ["Normalisation", "normaliser", "normalise"]


@dataclass(frozen=True)
class Normalisation:
    """``x = (rgb / 255 - mean) / std`` per channel, RGB order, float32 (ImageNet statistics by default)."""

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        if len(self.mean) != 3 or len(self.std) != 3 or not all(s > 0 for s in self.std):
            raise ValueError(f"normalisation needs 3 means and 3 positive stds, got {self.mean} / {self.std}")

    def to_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std)}

    def function(self, device: str | torch.device = "cpu") -> Callable[[torch.Tensor], torch.Tensor]:
        """``uint8 [B,H,W,3] -> float32 [B,3,H,W]`` on ``device``."""
        device = torch.device(device)
        m = torch.tensor(self.mean, device=device, dtype=torch.float32).view(1, 3, 1, 1)
        s = torch.tensor(self.std, device=device, dtype=torch.float32).view(1, 3, 1, 1)

        def apply(batch_hwc_uint8: torch.Tensor) -> torch.Tensor:
            x = batch_hwc_uint8.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
            return (x - m) / s

        return apply


def normaliser(method: "Method", device: str | torch.device = "cpu") -> Callable[[torch.Tensor], torch.Tensor]:
    """The function ``oodbench run`` applies to ``uint8 [B,H,W,3]`` batches for ``method``."""
    return method.preprocessing().function(device)


def normalise(images: np.ndarray | torch.Tensor, method: "Method",
              device: str | torch.device | None = None) -> torch.Tensor:
    """``method``'s input for uint8 RGB ``images`` (``[H,W,3]`` or ``[B,H,W,3]``), as ``oodbench run`` makes it.

    ``device`` defaults to the method's own.
    """
    t = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    if t.dtype != torch.uint8 or t.ndim not in (3, 4) or t.shape[-1] != 3:
        raise ValueError(f"normalise expects uint8 RGB images [H,W,3] or [B,H,W,3], got {t.dtype} {tuple(t.shape)}")
    if t.ndim == 3:
        t = t[None]
    return normaliser(method, method.device if device is None else device)(t)
