"""VainF DeepLabV3+ (``deeplabv3plus_resnet50/101``, ``deeplabv3plus_mobilenetv2``).

Layout of ``VainF/DeepLabV3Plus-Pytorch@4e1087d:network/_deeplab.py`` (``DeepLabHeadV3Plus``,
``ASPP``) and ``network/modeling.py``; facts in ``docs/rpl-official.md`` §2.2 and the compat manifests:

* ``backbone``: torchvision-layout ResNet (``conv1/bn1/layer1..4``, no ``fc``; low tap ``layer1``
  256 ch at stride 4, deep tap ``layer4`` 2048 ch) with the last stage(s) dilated instead of
  strided (OS16: layer4; OS8: layer3+layer4), or VainF's MobileNetV2 (:mod:`.mobilenetv2`);
* ``classifier.project``: 1x1 low -> 48, BN, ReLU;
* ``classifier.aspp``: ``convs.0`` 1x1, ``convs.1..3`` 3x3 with rates 6/12/18 (OS16) or 12/24/36
  (OS8), ``convs.4`` image pooling (pool, 1x1, BN, ReLU, upsampled) -- each 256 ch with BN+ReLU,
  concatenated in that order -- then ``project`` 1x1 1280->256, BN, ReLU, Dropout(0.1);
* ``classifier.classifier``: 3x3 304->256, BN, ReLU, 1x1 256->classes **with bias**;
* ``dec0 = cat[project(low), up(aspp(deep))]``; every resize bilinear, ``align_corners=False``.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from oodbench.errors import UsageError

from . import SEGMENTERS
from .base import DeepLabV3PlusBase, PretrainedCfg

__all__ = [
    "ASPP",
    "DeepLabHeadV3Plus",
    "VainFDeepLabV3Plus",
    "ResNetBackbone",
    "aspp_rates",
    "deeplabv3plus_resnet50",
    "deeplabv3plus_resnet101",
    "deeplabv3plus_mobilenetv2",
]

_VAINF_SOURCE = "VainF/DeepLabV3Plus-Pytorch@4e1087de98bc49d55b9239ae92810ef7368660db"


def aspp_rates(output_stride: int) -> tuple[int, int, int]:
    """DeepLab's atrous rates: (6,12,18) at output stride 16, doubled at 8."""
    if output_stride == 16:
        return (6, 12, 18)
    if output_stride == 8:
        return (12, 24, 36)
    raise UsageError(f"output_stride must be 8 or 16, got {output_stride}")


def _conv_bn_relu(cin: int, cout: int, k: int = 1, dilation: int = 1) -> list[nn.Module]:
    pad = 0 if k == 1 else dilation
    return [nn.Conv2d(cin, cout, k, padding=pad, dilation=dilation, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True)]


class _ASPPPooling(nn.Sequential):
    """Image pooling branch: keys ``1`` (conv) and ``2`` (BN); upsampled back with align_corners=False."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), *_conv_bn_relu(cin, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(super().forward(x), size=x.shape[-2:], mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """VainF ASPP: ``convs`` [1x1, 3 atrous, pooling] -> concat -> ``project`` (1x1, BN, ReLU, Dropout)."""

    def __init__(self, in_channels: int, rates: Sequence[int], out_channels: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        convs = [nn.Sequential(*_conv_bn_relu(in_channels, out_channels))]
        convs += [nn.Sequential(*_conv_bn_relu(in_channels, out_channels, 3, r)) for r in rates]
        convs.append(_ASPPPooling(in_channels, out_channels))
        self.convs = nn.ModuleList(convs)
        self.project = nn.Sequential(*_conv_bn_relu(len(convs) * out_channels, out_channels), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([c(x) for c in self.convs], 1))


class DeepLabHeadV3Plus(nn.Module):
    """``classifier``: ``project`` (low -> low_out), ``aspp``, ``classifier`` (3x3 + BN + ReLU + 1x1 w/ bias)."""

    def __init__(self, in_channels: int, low_channels: int, num_classes: int, rates: Sequence[int],
                 aspp_channels: int = 256, low_out: int = 48) -> None:
        super().__init__()
        self.project = nn.Sequential(*_conv_bn_relu(low_channels, low_out))
        self.aspp = ASPP(in_channels, rates, aspp_channels)
        self.classifier = nn.Sequential(
            *_conv_bn_relu(low_out + aspp_channels, aspp_channels, 3), nn.Conv2d(aspp_channels, num_classes, 1)
        )
        for m in self.modules():  # VainF's _init_weight
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


class VainFDeepLabV3Plus(DeepLabV3PlusBase):
    """``backbone`` (returns ``(low, deep)``) + :class:`DeepLabHeadV3Plus` ``classifier``."""

    align_corners = False
    residual_anchor = "classifier"

    def __init__(self, backbone: nn.Module, head: DeepLabHeadV3Plus, num_classes: int, output_stride: int,
                 decoder_stride: int, pretrained_cfg: PretrainedCfg) -> None:
        super().__init__()
        self.backbone = backbone
        self.classifier = head
        self.num_classes = num_classes
        self.output_stride = output_stride
        self.decoder_stride = decoder_stride
        self.context_channels = head.aspp.project[0].out_channels
        self.decoder_channels = head.project[0].out_channels + head.aspp.project[0].out_channels
        self.pretrained_cfg = pretrained_cfg

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.backbone(x)

    def context_modules(self) -> dict[str, nn.Module]:
        return {"aspp": self.classifier.aspp}

    def context(self, deep: torch.Tensor, modules: Mapping[str, nn.Module] | None = None) -> torch.Tensor:
        m = self.context_modules() if modules is None else modules
        return m["aspp"](deep)

    def decoder_input(self, low: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.classifier.project(low), self.interpolate(ctx, low.shape[-2:])], 1)

    def classify(self, dec0: torch.Tensor) -> torch.Tensor:
        return self.classifier.classifier(dec0)


class ResNetBackbone(nn.Module):
    """torchvision ResNet without ``avgpool``/``fc``; returns ``(layer1, layer4)``."""

    def __init__(self, depth: int, output_stride: int) -> None:
        super().__init__()
        from torchvision.models import resnet50, resnet101

        dilate = {16: [False, False, True], 8: [False, True, True]}.get(output_stride)
        if dilate is None:
            raise UsageError(f"ResNet backbone: output_stride must be 8 or 16, got {output_stride}")
        factory = {50: resnet50, 101: resnet101}[depth]
        net = factory(weights=None, replace_stride_with_dilation=dilate)  # never downloads
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            self.add_module(name, getattr(net, name))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x)))))
        return low, self.layer4(self.layer3(self.layer2(low)))


def _vainf_cfg(name: str, output_stride: int, num_classes: int, checkpoint_file: str | None, notes: str) -> PretrainedCfg:
    return PretrainedCfg(
        name=name,
        tag="cityscapes" if checkpoint_file else "",
        num_classes=num_classes,
        checkpoint_file=checkpoint_file,
        sha256=None,  # released files were not available to hash
        url=None,  # links in VainF/DeepLabV3Plus-Pytorch:README.md
        source=_VAINF_SOURCE,
        output_stride=output_stride,
        decoder_stride=4,
        align_corners=False,
        notes=notes,
        extra={"wrapper_key": "model_state", "key_prefix": ""},
    )


def _resnet(depth: int, num_classes: int, output_stride: int) -> VainFDeepLabV3Plus:
    name = f"deeplabv3plus_resnet{depth}"
    ckpt = f"best_deeplabv3plus_resnet{depth}_cityscapes_os16.pth" if depth == 101 else None
    notes = ("Cityscapes mIoU 0.762 (VainF README); trained on 768x768 crops." if depth == 101 else
             "No Cityscapes checkpoint is published for ResNet50 (VainF's ResNet50 weights are Pascal VOC).")
    head = DeepLabHeadV3Plus(2048, 256, num_classes, aspp_rates(output_stride))
    return VainFDeepLabV3Plus(ResNetBackbone(depth, output_stride), head, num_classes, output_stride, 4,
                              _vainf_cfg(name, output_stride, num_classes, ckpt, notes))


@SEGMENTERS.register("deeplabv3plus_resnet101")
def deeplabv3plus_resnet101(num_classes: int = 19, output_stride: int = 16) -> VainFDeepLabV3Plus:
    """VainF DeepLabV3+ ResNet101 (output stride 16 default, 8 optional)."""
    return _resnet(101, num_classes, output_stride)


@SEGMENTERS.register("deeplabv3plus_resnet50")
def deeplabv3plus_resnet50(num_classes: int = 19, output_stride: int = 16) -> VainFDeepLabV3Plus:
    """VainF DeepLabV3+ ResNet50 (output stride 16 default, 8 optional)."""
    return _resnet(50, num_classes, output_stride)


@SEGMENTERS.register("deeplabv3plus_mobilenetv2")
def deeplabv3plus_mobilenetv2(num_classes: int = 19, output_stride: int = 16) -> VainFDeepLabV3Plus:
    """VainF DeepLabV3+ MobileNetV2 (output stride 16 default, 8 optional)."""
    from .mobilenetv2 import VainFMobileNetV2Backbone

    head = DeepLabHeadV3Plus(320, 24, num_classes, aspp_rates(output_stride))
    cfg = _vainf_cfg("deeplabv3plus_mobilenetv2", output_stride, num_classes,
                     "best_deeplabv3plus_mobilenet_cityscapes_os16.pth",
                     "Cityscapes mIoU 0.721 (VainF README); trained on 768x768 crops.")
    return VainFDeepLabV3Plus(VainFMobileNetV2Backbone(output_stride), head, num_classes, output_stride, 4, cfg)
