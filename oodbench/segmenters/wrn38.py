"""NVIDIA sdcnet DeepLabV3+ with a WideResNet38 trunk (``deeplabv3plus_wrn38``).

Architecture (``docs/rpl-official.md`` §2.1; reference ``NVIDIA/semantic-segmentation@sdcnet:
network/deepv3.py`` ``DeepWV3Plus`` and ``network/wider_resnet.py`` ``WiderResNetA2``,
structure ``[3,3,6,3,1,1]``, ``dilation=True``; mirrored in ``yyliu01/RPL:rpl_corocl.code/model/
wide_network.py``):

* trunk ``mod1`` (3x3 conv 3->64), ``pool2`` (max 3/2/1), ``mod2`` (low tap, 128 ch, stride 2),
  ``pool3``, ``mod3``, ``mod4`` (stride 8), ``mod5`` (dilation 2), ``mod6``/``mod7`` (bottleneck,
  dilation 4, Dropout2d 0.3/0.5; mod7 gives 4096 ch at stride 8, used *without* ``bn_out``);
  pre-activation :class:`IdentityResidualBlock` (BN+ReLU ``bn1`` on the input; projection
  shortcut from ``bn1(x)`` when shape changes, identity on the raw ``x`` otherwise);
* ASPP on 4096 ch: image pooling (conv+BN+ReLU, upsampled) **first**, then 1x1 and 3x3 with rates
  12/24/36 (conv+BN+ReLU each, 256 ch) -> 1280 ch; state-dict order ``features.0..3`` then
  ``img_conv``;
* ``bot_aspp`` 1x1 1280->256 and ``bot_fine`` 1x1 128->48, plain convs (no BN/ReLU);
* ``dec0 = cat[bot_fine(m2), up(bot_aspp(aspp))]`` (304 ch, stride 2) -> ``final``
  (3x3 304->256, BN, ReLU, 3x3 256->256, BN, ReLU, 1x1 256->19); no conv has a bias;
* every resize is bilinear with ``align_corners=True``.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Mapping

import torch
from torch import nn

from oodbench.errors import UsageError

from . import SEGMENTERS
from .base import DeepLabV3PlusBase, PretrainedCfg

__all__ = ["IdentityResidualBlock", "WiderResNet38Trunk", "NvidiaASPP", "DeepWV3Plus", "deeplabv3plus_wrn38"]

_CHANNELS = ((128, 128), (256, 256), (512, 512), (512, 1024), (512, 1024, 2048), (1024, 2048, 4096))
_STRUCTURE = (3, 3, 6, 3, 1, 1)


def _bn_relu(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


class IdentityResidualBlock(nn.Module):
    """Pre-activation wide residual block (basic: two 3x3; bottleneck: 1x1, 3x3, 1x1)."""

    def __init__(
        self,
        in_channels: int,
        channels: tuple[int, ...],
        stride: int = 1,
        dilation: int = 1,
        dropout: float | None = None,
    ) -> None:
        super().__init__()
        if len(channels) not in (2, 3):
            raise ValueError(f"IdentityResidualBlock: channels must have 2 or 3 entries, got {channels}")
        self.bn1 = _bn_relu(in_channels)
        d = dilation
        if len(channels) == 2:
            layers = [
                ("conv1", nn.Conv2d(in_channels, channels[0], 3, stride, d, dilation=d, bias=False)),
                ("bn2", _bn_relu(channels[0])),
                ("conv2", nn.Conv2d(channels[0], channels[1], 3, 1, d, dilation=d, bias=False)),
            ]
            drop_at = 2
        else:
            layers = [
                ("conv1", nn.Conv2d(in_channels, channels[0], 1, stride, 0, bias=False)),
                ("bn2", _bn_relu(channels[0])),
                ("conv2", nn.Conv2d(channels[0], channels[1], 3, 1, d, dilation=d, bias=False)),
                ("bn3", _bn_relu(channels[1])),
                ("conv3", nn.Conv2d(channels[1], channels[2], 1, 1, 0, bias=False)),
            ]
            drop_at = 4
        if dropout is not None:  # parameter-free, so the key layout is unchanged
            layers.insert(drop_at, ("dropout", nn.Dropout2d(dropout)))
        self.convs = nn.Sequential(OrderedDict(layers))
        if stride != 1 or in_channels != channels[-1]:
            self.proj_conv = nn.Conv2d(in_channels, channels[-1], 1, stride, 0, bias=False)
        else:
            self.proj_conv = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.bn1(x)
        shortcut = self.proj_conv(pre) if self.proj_conv is not None else x
        return self.convs(pre) + shortcut


class WiderResNet38Trunk(nn.Module):
    """``WiderResNetA2`` trunk without ``bn_out``/``classifier`` (output stride 8, dilated)."""

    def __init__(self) -> None:
        super().__init__()
        self.mod1 = nn.Sequential(OrderedDict([("conv1", nn.Conv2d(3, 64, 3, 1, 1, bias=False))]))
        in_ch = 64
        for mod_id, (num, channels) in enumerate(zip(_STRUCTURE, _CHANNELS)):
            dil = 1 if mod_id < 3 else (2 if mod_id == 3 else 4)
            drop = {4: 0.3, 5: 0.5}.get(mod_id)
            blocks = []
            for block_id in range(num):
                stride = 2 if (block_id == 0 and mod_id == 2) else 1
                blocks.append((f"block{block_id + 1}", IdentityResidualBlock(in_ch, channels, stride, dil, drop)))
                in_ch = channels[-1]
            if mod_id < 2:
                self.add_module(f"pool{mod_id + 2}", nn.MaxPool2d(3, stride=2, padding=1))
            self.add_module(f"mod{mod_id + 2}", nn.Sequential(OrderedDict(blocks)))


class NvidiaASPP(nn.Module):
    """``_AtrousSpatialPyramidPoolingModule(in, 256, output_stride)``: image pooling + 1x1 + 3 atrous."""

    def __init__(self, in_channels: int, reduction: int = 256, output_stride: int = 8,
                 rates: tuple[int, int, int] = (6, 12, 18)) -> None:
        super().__init__()
        if output_stride == 8:
            rates = tuple(2 * r for r in rates)
        elif output_stride != 16:
            raise UsageError(f"NvidiaASPP: output_stride must be 8 or 16, got {output_stride}")
        self.rates = rates
        feats = [nn.Sequential(nn.Conv2d(in_channels, reduction, 1, bias=False), *_bn_relu(reduction))]
        for r in rates:
            feats.append(nn.Sequential(
                nn.Conv2d(in_channels, reduction, 3, dilation=r, padding=r, bias=False), *_bn_relu(reduction)
            ))
        self.features = nn.ModuleList(feats)
        self.img_pooling = nn.AdaptiveAvgPool2d(1)
        self.img_conv = nn.Sequential(nn.Conv2d(in_channels, reduction, 1, bias=False), *_bn_relu(reduction))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.img_conv(self.img_pooling(x))
        out = [nn.functional.interpolate(pooled, size=x.shape[-2:], mode="bilinear", align_corners=True)]
        out.extend(f(x) for f in self.features)
        return torch.cat(out, 1)


class DeepWV3Plus(DeepLabV3PlusBase):
    """NVIDIA sdcnet ``DeepWV3Plus``: WideResNet38 + DeepLabV3+ head (state-dict keys identical)."""

    output_stride = 8
    decoder_stride = 2
    decoder_channels = 304
    context_channels = 256
    align_corners = True
    residual_anchor = "aspp"

    def __init__(self, num_classes: int = 19) -> None:
        super().__init__()
        self.num_classes = num_classes
        trunk = WiderResNet38Trunk()
        # same registration order as the official class: mod1, mod2..mod7, pool2, pool3
        self.mod1 = trunk.mod1
        for i in range(2, 8):
            self.add_module(f"mod{i}", getattr(trunk, f"mod{i}"))
        self.pool2 = trunk.pool2
        self.pool3 = trunk.pool3
        self.aspp = NvidiaASPP(4096, 256, output_stride=8)
        self.bot_fine = nn.Conv2d(128, 48, 1, bias=False)
        self.bot_aspp = nn.Conv2d(1280, 256, 1, bias=False)
        self.final = nn.Sequential(
            nn.Conv2d(304, 256, 3, padding=1, bias=False), *_bn_relu(256),
            nn.Conv2d(256, 256, 3, padding=1, bias=False), *_bn_relu(256),
            nn.Conv2d(256, num_classes, 1, bias=False),
        )
        self.pretrained_cfg = _cfg(num_classes)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m2 = self.mod2(self.pool2(self.mod1(x)))
        deep = self.mod7(self.mod6(self.mod5(self.mod4(self.mod3(self.pool3(m2))))))
        return m2, deep

    def context_modules(self) -> dict[str, nn.Module]:
        return {"aspp": self.aspp, "bot_aspp": self.bot_aspp}

    def context(self, deep: torch.Tensor, modules: Mapping[str, nn.Module] | None = None) -> torch.Tensor:
        m = self.context_modules() if modules is None else modules
        return m["bot_aspp"](m["aspp"](deep))

    def decoder_input(self, low: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.bot_fine(low), self.interpolate(ctx, low.shape[-2:])], 1)

    def classify(self, dec0: torch.Tensor) -> torch.Tensor:
        return self.final(dec0)


def _cfg(num_classes: int) -> PretrainedCfg:
    return PretrainedCfg(
        name="deeplabv3plus_wrn38",
        tag="cityscapes",
        num_classes=num_classes,
        checkpoint_file="cityscapes_best.pth",
        sha256=None,  # the released file was not available to hash
        url=None,  # Google Drive link in NVIDIA/semantic-segmentation@sdcnet:README.md
        source="NVIDIA/semantic-segmentation@2f548ab30ab0d56e91de66a4dea4757a0c64e7e4 (branch sdcnet)",
        output_stride=8,
        decoder_stride=2,
        align_corners=True,
        notes=(
            "Fine-tuned with --cv 2: most of Cityscapes val was in training (val mIoU 90.69), so "
            "Cityscapes val is not held out for this checkpoint. Wrapper {'state_dict'}, keys "
            "prefixed 'module.', plus 'module.criterion.nll_loss.weight' (dropped on load)."
        ),
        extra={"wrapper_key": "state_dict", "key_prefix": "module.",
               "drop_keys": ["module.criterion.nll_loss.weight"]},
    )


@SEGMENTERS.register("deeplabv3plus_wrn38")
def deeplabv3plus_wrn38(num_classes: int = 19, output_stride: int = 8) -> DeepWV3Plus:
    """NVIDIA sdcnet DeepLabV3+ WideResNet38 (output stride 8, decoder stride 2)."""
    if output_stride != 8:
        raise UsageError(f"deeplabv3plus_wrn38: only output_stride=8 exists (got {output_stride})")
    return DeepWV3Plus(num_classes=num_classes)
