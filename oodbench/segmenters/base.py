"""Common DeepLabV3+ decomposition shared by every registered segmenter, and the pretrained config.

Every segmenter is a :class:`DeepLabV3PlusBase` whose forward is, exactly::

    low, deep = features(x)                       # backbone taps (decoder stride, output stride)
    ctx       = context(deep)                     # ASPP (+ bottleneck/projection) -> [B,256,h,w]
    dec0      = decoder_input(low, ctx)           # concat fed to the final head (decoder_channels)
    logits    = interpolate(classify(dec0), x.shape[-2:])

so RPL (``oodbench.methods.rpl``) can run a copy of the context modules
(:meth:`context_modules`, called through ``context(deep, modules=copies)``) and add a residual to
``dec0`` on any family. ``interpolate`` is bilinear with the family's ``align_corners`` (``True``
for NVIDIA sdcnet, ``False`` for VainF).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_LABEL_IDS",
    "PretrainedCfg",
    "DeepLabV3PlusBase",
]

#: ImageNet statistics, used by NVIDIA sdcnet, VainF and RPL (``docs/rpl-official.md`` §2.4).
#: The one copy in oodbench: the runner, the training transforms and every segmenter config use it.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: The 19 Cityscapes evaluation classes in train-id order.
CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)
#: Cityscapes label ids of train ids 0..18 (``cityscapesscripts.helpers.labels``).
CITYSCAPES_LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)


@dataclass(frozen=True)
class PretrainedCfg:
    """Weights and data contract of a segmenter (timm ``PretrainedCfg`` style).

    Attributes:
        name: registry name of the architecture.
        tag: weight tag (e.g. ``"cityscapes"``); empty for architectures without released weights.
        mean, std: RGB normalisation applied to ``[0,1]`` images before the forward.
        num_classes: output channels.
        label_names: class names in output-channel order.
        label_ids: dataset label ids of the output channels (Cityscapes ids for train ids 0..18).
        checkpoint_file: file name of the official checkpoint.
        sha256: sha256 of that file when known (``None`` otherwise; never invented).
        url: where the official file is published.
        source: ``owner/repo@commit`` of the reference implementation.
        output_stride, decoder_stride: strides of the deep and low-level taps.
        interpolation: ``"bilinear"``; ``align_corners`` the family's flag.
        notes: free text (split caveats etc.).
    """

    name: str
    tag: str = ""
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    num_classes: int = 19
    label_names: tuple[str, ...] = CITYSCAPES_CLASSES
    label_ids: tuple[int, ...] = CITYSCAPES_LABEL_IDS
    checkpoint_file: str | None = None
    sha256: str | None = None
    url: str | None = None
    source: str = ""
    output_stride: int = 16
    decoder_stride: int = 4
    interpolation: str = "bilinear"
    align_corners: bool = False
    notes: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.num_classes != len(CITYSCAPES_CLASSES):  # a non-Cityscapes head: generic names
            if self.label_names == CITYSCAPES_CLASSES:
                object.__setattr__(self, "label_names", tuple(f"class_{i}" for i in range(self.num_classes)))
            if self.label_ids == CITYSCAPES_LABEL_IDS:
                object.__setattr__(self, "label_ids", tuple(range(self.num_classes)))
        if len(self.label_names) != self.num_classes or len(self.label_ids) != self.num_classes:
            raise ValueError(
                f"PretrainedCfg {self.name!r}: {len(self.label_names)} label names and "
                f"{len(self.label_ids)} label ids for {self.num_classes} classes"
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["extra"] = dict(self.extra)
        return d


class DeepLabV3PlusBase(nn.Module):
    """Abstract DeepLabV3+ with the decomposition documented in the module docstring.

    Subclasses set ``num_classes``, ``output_stride``, ``decoder_stride``, ``decoder_channels``,
    ``context_channels``, ``align_corners``, ``residual_anchor`` (the top-level child before which
    RPL inserts its ``residual_block`` so state-dict order matches the official layout) and
    ``pretrained_cfg``; and implement the five decomposition methods.
    """

    num_classes: int
    output_stride: int
    decoder_stride: int
    decoder_channels: int
    context_channels: int = 256
    align_corners: bool = False
    residual_anchor: str | None = None
    pretrained_cfg: PretrainedCfg

    def __init__(self) -> None:
        super().__init__()
        #: sha256 of the checkpoint file loaded into this model (set by ``load_checkpoint``).
        self.checkpoint_sha256: str | None = None

    # -- decomposition ----------------------------------------------------------------------
    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Backbone taps ``(low, deep)`` at the decoder and output strides."""
        raise NotImplementedError

    def context_modules(self) -> dict[str, nn.Module]:
        """The submodules :meth:`context` runs, by name (RPL deep-copies them)."""
        raise NotImplementedError

    def context(self, deep: torch.Tensor, modules: Mapping[str, nn.Module] | None = None) -> torch.Tensor:
        """ASPP (+ bottleneck / projection) at the output stride, ``[B, context_channels, h, w]``.

        ``modules`` replaces :meth:`context_modules` (same names), e.g. with RPL's copies.
        """
        raise NotImplementedError

    def decoder_input(self, low: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        """``dec0``: the ``decoder_channels``-channel concat fed to the final head."""
        raise NotImplementedError

    def classify(self, dec0: torch.Tensor) -> torch.Tensor:
        """Logits at the decoder stride."""
        raise NotImplementedError

    # -- shared -----------------------------------------------------------------------------
    def interpolate(self, t: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
        """Bilinear resize with the family's ``align_corners``."""
        return F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=self.align_corners)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low, deep = self.features(x)
        dec0 = self.decoder_input(low, self.context(deep))
        return self.interpolate(self.classify(dec0), x.shape[-2:])

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, output_stride={self.output_stride}, "
            f"decoder_stride={self.decoder_stride}, align_corners={self.align_corners}"
        )
