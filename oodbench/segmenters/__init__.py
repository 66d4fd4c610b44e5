"""Closed-set segmenters (DeepLabV3+ variants) and checkpoint loading.

``build(name, checkpoint=None, **kwargs)`` returns an ``nn.Module`` mapping a normalised
``[B,3,H,W]`` tensor to ``[B,num_classes,H,W]`` logits. Registered names:

* ``deeplabv3plus_wrn38`` -- NVIDIA sdcnet WideResNet38 (OS8, decoder stride 2), the RPL backbone;
* ``deeplabv3plus_mobilenetv2``, ``deeplabv3plus_resnet50``, ``deeplabv3plus_resnet101`` -- VainF
  layout (``output_stride`` 16 default, 8 optional);
* ``deeplabv3plus_small`` -- a tiny CPU configuration for tests and the synthetic benchmark.

All of them share the decomposition of :class:`~oodbench.segmenters.base.DeepLabV3PlusBase`
(``features``/``context``/``decoder_input``/``classify``) and carry a ``pretrained_cfg``.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

import torch

from oodbench.registry import Registry

__all__ = [
    "SEGMENTERS",
    "build",
    "list_segmenters",
    "get_pretrained_cfg",
    "DeepLabV3PlusBase",
    "PretrainedCfg",
    "CheckpointError",
    "LoadReport",
    "load_checkpoint",
    "save_checkpoint",
]

SEGMENTERS = Registry("segmenter")

from .base import DeepLabV3PlusBase, PretrainedCfg  # noqa: E402
from .weights import CheckpointError, LoadReport, load_checkpoint, save_checkpoint  # noqa: E402
from . import wrn38, vainf, small  # noqa: E402,F401  (register the architectures)


def list_segmenters(pattern: str = "*") -> list[str]:
    """Registered segmenter names matching an fnmatch pattern."""
    return SEGMENTERS.names(pattern)


def get_pretrained_cfg(name: str, **kwargs: Any) -> PretrainedCfg:
    """The :class:`PretrainedCfg` of ``name`` (built on the meta device: no memory, no init)."""
    with torch.device("meta"):
        return SEGMENTERS.build(name, **kwargs).pretrained_cfg


def build(name: str, checkpoint: str | os.PathLike | Mapping[str, Any] | None = None, **kwargs: Any):
    """Build segmenter ``name`` and (optionally) load ``checkpoint`` strictly.

    With a checkpoint the model is constructed on the ``meta`` device and the checkpoint tensors
    are assigned to it, so no time is spent on a random init that is overwritten and the weights
    exist once in memory. The returned model is in eval mode when a checkpoint was loaded.
    """
    if checkpoint is None:
        return SEGMENTERS.build(name, **kwargs)
    with torch.device("meta"):
        model = SEGMENTERS.build(name, **kwargs)
    load_checkpoint(model, checkpoint, strict=True, assign=True)
    return model.eval()
