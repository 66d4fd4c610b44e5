"""``deeplabv3plus_small``: a tiny DeepLabV3+ for CPU tests and the synthetic benchmark.

Same structure and decomposition as the VainF family (:mod:`.vainf`: ``classifier.project``,
``classifier.aspp`` with image pooling + projection, ``classifier.classifier``, bilinear
``align_corners=False``) on a 4-stage plain conv backbone (Conv-BN-ReLU):

========  =====================================  =========  ========
stage     layers                                 channels   stride
========  =====================================  =========  ========
stem      3x3 s2                                 16         2
layer1    3x3 s2, 3x3  (low-level tap)           24         4
layer2    3x3 s2, 3x3                            48         8
layer3    3x3 s2 (OS16) or dilated (OS8), 3x3    96         8 / 16
========  =====================================  =========  ========

Head width 64 (ASPP and decoder), low-level projection 16, so ``decoder_channels = 80`` and
``context_channels = 64``; about 0.4 M parameters. Default output stride 8 with atrous rates
(2, 4, 6), which suit the 16x32 deep map of a 128x256 image (DeepLab's 12/24/36 would mostly hit
the zero padding there); pass ``atrous_rates`` to change them.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from oodbench.errors import UsageError

from . import SEGMENTERS
from .base import PretrainedCfg
from .vainf import DeepLabHeadV3Plus, VainFDeepLabV3Plus

__all__ = ["SmallBackbone", "deeplabv3plus_small"]


def _cbr(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SmallBackbone(nn.Module):
    """Plain conv backbone; returns ``(layer1 [24 ch, /4], layer3 [96 ch, /output_stride])``."""

    def __init__(self, output_stride: int = 8) -> None:
        super().__init__()
        if output_stride not in (8, 16):
            raise UsageError(f"deeplabv3plus_small: output_stride must be 8 or 16, got {output_stride}")
        self.stem = _cbr(3, 16, 2)
        self.layer1 = nn.Sequential(_cbr(16, 24, 2), _cbr(24, 24))
        self.layer2 = nn.Sequential(_cbr(24, 48, 2), _cbr(48, 48))
        if output_stride == 16:
            self.layer3 = nn.Sequential(_cbr(48, 96, 2), _cbr(96, 96))
        else:
            self.layer3 = nn.Sequential(_cbr(48, 96, 1, 2), _cbr(96, 96, 1, 2))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.layer1(self.stem(x))
        return low, self.layer3(self.layer2(low))


@SEGMENTERS.register("deeplabv3plus_small")
def deeplabv3plus_small(num_classes: int = 19, output_stride: int = 8,
                        atrous_rates: Sequence[int] = (2, 4, 6)) -> VainFDeepLabV3Plus:
    """Tiny DeepLabV3+ (~0.4 M parameters) for CPU tests and the synthetic benchmark."""
    if len(tuple(atrous_rates)) != 3:
        raise UsageError(f"deeplabv3plus_small: atrous_rates must have 3 entries, got {atrous_rates}")
    head = DeepLabHeadV3Plus(96, 24, num_classes, tuple(atrous_rates), aspp_channels=64, low_out=16)
    cfg = PretrainedCfg(
        name="deeplabv3plus_small",
        num_classes=num_classes,
        source="oodbench",
        output_stride=output_stride,
        decoder_stride=4,
        align_corners=False,
        notes="No released weights; trained by oodbench (synthetic demo, tests).",
        extra={"atrous_rates": tuple(atrous_rates)},
    )
    return VainFDeepLabV3Plus(SmallBackbone(output_stride), head, num_classes, output_stride, 4, cfg)
