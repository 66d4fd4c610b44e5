"""VainF's MobileNetV2 backbone (``VainF/DeepLabV3Plus-Pytorch@4e1087d:network/backbone/mobilenetv2.py``).

Differences from torchvision's ``mobilenet_v2`` that change the numbers (the key layout is the same:
``<i>.conv.0.0`` expand conv, ``.0.1`` BN, ``.1.0`` depthwise conv, ``.1.1`` BN, ``.2`` project conv,
``.3`` BN; for expand ratio 1 the depthwise conv is ``.0``):

* every convolution is built with ``padding=0``; an inverted-residual block instead zero-pads its
  **input** by the "fixed padding" of its 3x3 depthwise conv (``d`` on each side for dilation
  ``d``), so the 1x1 expansion also runs on the padded border;
* the stem ``ConvBNReLU(3, 32, stride=2)`` is therefore unpadded (``H -> floor((H-3)/2)+1``);
* output stride 8 or 16 by dilation: once the running stride reaches ``output_stride`` a stage's
  stride becomes 1 and its dilation is multiplied by the stride; the first block of such a stage
  keeps the previous dilation;
* ``features[0:4]`` become ``low_level_features`` (24 ch, stride 4) and ``features[4:-1]`` become
  ``high_level_features`` (320 ch), keeping the original indices as keys; ``features[18]`` (the
  1280-ch conv) is dropped.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from oodbench.errors import UsageError

__all__ = ["ConvBNReLU6", "InvertedResidual", "VainFMobileNetV2Backbone"]

# t (expansion), c (channels), n (blocks), s (stride) -- MobileNetV2 Table 2
_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class ConvBNReLU6(nn.Sequential):
    """Conv (no padding, no bias) + BN + ReLU6."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, stride: int = 1, dilation: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel_size, stride, 0, dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise 3x3 -> project (1x1, linear); input padded by the dw conv's padding."""

    def __init__(self, cin: int, cout: int, stride: int, dilation: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = int(round(cin * expand_ratio))
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(cin, hidden, kernel_size=1))
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, dilation=dilation, groups=hidden),
            nn.Conv2d(hidden, cout, 1, 1, 0, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)
        pad_total = 2 * dilation  # effective kernel 3 + 2 (d - 1), minus 1
        self.input_padding = (pad_total // 2, pad_total - pad_total // 2) * 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(F.pad(x, self.input_padding))
        return x + out if self.use_res_connect else out


class VainFMobileNetV2Backbone(nn.Module):
    """``low_level_features`` (indices 0..3) and ``high_level_features`` (4..17); returns ``(low, deep)``."""

    def __init__(self, output_stride: int = 16) -> None:
        super().__init__()
        if output_stride not in (8, 16):
            raise UsageError(f"MobileNetV2 backbone: output_stride must be 8 or 16, got {output_stride}")
        features: list[nn.Module] = [ConvBNReLU6(3, 32, stride=2)]
        current_stride, dilation, cin = 2, 1, 32
        for t, c, n, s in _SETTING:
            previous_dilation = dilation
            if current_stride == output_stride:
                stride, dilation = 1, dilation * s
            else:
                stride, current_stride = s, current_stride * s
            for i in range(n):
                if i == 0:
                    features.append(InvertedResidual(cin, c, stride, previous_dilation, t))
                else:
                    features.append(InvertedResidual(cin, c, 1, dilation, t))
                cin = c
        named = [(str(i), m) for i, m in enumerate(features)]
        self.low_level_features = nn.Sequential(OrderedDict(named[:4]))
        self.high_level_features = nn.Sequential(OrderedDict(named[4:]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.low_level_features(x)
        return low, self.high_level_features(low)
