"""Closed-set segmenters (DeepLabV3+ variants) and checkpoint loading.

``build(name, checkpoint=None)`` returns an ``nn.Module`` mapping a normalised ``[B,3,H,W]``
tensor to ``[B,num_classes,H,W]`` logits.
"""
from __future__ import annotations

from oodbench.registry import Registry

__all__ = ["SEGMENTERS", "build"]

SEGMENTERS = Registry("segmenter")


def build(name: str, checkpoint: str | None = None, **kwargs):
    """Build segmenter ``name`` and (optionally) load ``checkpoint`` strictly."""
    model = SEGMENTERS.build(name, **kwargs)
    if checkpoint is not None:
        from .checkpoint import load_checkpoint

        load_checkpoint(model, checkpoint)
    return model
