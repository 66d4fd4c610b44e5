r"""The RPL network: a trainable residual block on a frozen DeepLabV3+ (``RPLNet``).

Reference: Liu et al., "Residual Pattern Learning for Pixel-wise Out-of-Distribution Detection in
Semantic Segmentation", ICCV 2023; ``yyliu01/RPL:rpl_corocl.code/model/wide_network.py``
(``ResidualAnomalyBlock``, ``ProjectionHead``, ``DeepWV3Plus.forward``) as described in
``docs/rpl-official.md`` §3 and §12.

With the segmenter decomposition of :mod:`oodbench.segmenters.base` (``deep`` = backbone output,
``dec0`` = the decoder input, ``final`` = the shared frozen head ``classify``):

.. math::
    r &= \mathrm{Up}_{\text{dec}}\big(\mathrm{context}'(\text{deep})\big)
        \quad(\text{copies of ASPP + bottleneck; } [B,256,H/s,W/s])\\
    \text{out1} &= \mathrm{Up}\big(\mathrm{final}(\text{dec0})\big),\qquad
    \text{out2} = \mathrm{Up}\big(\mathrm{final}(\text{dec0} + W_{\text{rpl}}\, r)\big)\\
    \text{proj} &= W_{\text{proj}}\, r + b_{\text{proj}}\quad(\text{train mode only})

``W_rpl`` (``atten_aspp_final``, 1x1 256->304, no bias) and the CoroCL projector (``proj_head``,
1x1 256->304 with bias) are kaiming-normal (fan-in, gain sqrt 2), bias zero; ``context'`` starts as
an exact copy of the pretrained context modules, BatchNorm statistics included. Only the residual
block trains (and is in train mode); everything else is frozen and in eval mode. ``W_rpl`` gets
10x the learning rate (:meth:`RPLNet.trainable_parameters`).

State-dict layout (identical to the official ``rev3.pth``/``res.pth`` ``'model'`` entry on the
WRN38 segmenter): ``branch1.<segmenter keys>`` with ``branch1.residual_block.{atten_aspp.*,
bot_atten_aspp.weight, atten_aspp_final.weight, proj_head.proj.0.{weight,bias}}`` stored between
``branch1.mod7`` and ``branch1.aspp``. On the VainF family the residual block holds
``atten_aspp.*`` (ASPP incl. its projection) -- our extension; the official code has no such variant.
"""
from __future__ import annotations

import copy
from typing import Iterator

import torch
from torch import nn

from oodbench.segmenters.base import DeepLabV3PlusBase
from oodbench.errors import UsageError

__all__ = ["PROJECTORS", "ProjectionHead", "ResidualBlock", "RPLNet", "residual_name"]

#: CoroCL projector architectures (supplementary Table 4): name -> description
PROJECTORS = {
    "linear": "single 1x1 conv with bias (the paper's choice and the released code)",
    "mlp": "two 1x1 convs with a ReLU between, no BN (Table 4 '2 layers (w/o BN)')",
    "mlp-bn": "two 1x1 convs with BN+ReLU between (Table 4 '2 layers (w/ BN)')",
}


def residual_name(context_name: str) -> str:
    """Name of a context-module copy in the residual block (official rule: ``aspp`` -> ``atten_aspp``)."""
    return context_name.replace("aspp", "atten_aspp")


class ProjectionHead(nn.Module):
    """CoroCL projector ``in_channels -> out_channels`` (the embedding depth R).

    ``kind`` (:data:`PROJECTORS`): ``linear`` = a single 1x1 conv with bias (key ``proj.0``), no
    BN/ReLU -- the released code; ``mlp`` = conv(in->in) + ReLU + conv(in->R) (keys ``proj.0``,
    ``proj.2``); ``mlp-bn`` = conv(in->in, no bias) + BN + ReLU + conv(in->R) (keys ``proj.0``,
    ``proj.1``, ``proj.3``). The hidden width of the two-layer heads is ``in_channels`` (the
    supplementary does not state it; ContrastiveSeg's head keeps the input width). The last conv
    is kaiming-normal with zero bias like the single layer; :func:`projector_spec` reads the kind
    and R back from a state dict.
    """

    def __init__(self, in_channels: int, out_channels: int, kind: str = "linear") -> None:
        super().__init__()
        if kind not in PROJECTORS:
            raise UsageError(f"--projector: unknown projector {kind!r}; choose from {', '.join(PROJECTORS)}")
        self.kind = kind
        if kind == "linear":
            layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 1, bias=True)]
        elif kind == "mlp":
            layers = [nn.Conv2d(in_channels, in_channels, 1, bias=True), nn.ReLU(inplace=True),
                      nn.Conv2d(in_channels, out_channels, 1, bias=True)]
        else:
            layers = [nn.Conv2d(in_channels, in_channels, 1, bias=False), nn.BatchNorm2d(in_channels),
                      nn.ReLU(inplace=True), nn.Conv2d(in_channels, out_channels, 1, bias=True)]
        self.proj = nn.Sequential(*layers)

    @property
    def out_channels(self) -> int:
        return self.proj[-1].out_channels

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Kaiming-normal conv weights, zero biases, BN weight 1 / bias 0 (the official init)."""
        for m in self.proj:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, generator=generator)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()
                m.reset_running_stats()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class ResidualBlock(nn.Module):
    """Copies of the segmenter's context modules + the RPL head (+ the CoroCL projector).

    Registered as ``residual_block`` *inside* the segmenter (hence ``branch1.residual_block.*``).
    """

    def __init__(self, segmenter: DeepLabV3PlusBase, projector: bool = True, projector_kind: str = "linear",
                 embed_dim: int | None = None) -> None:
        super().__init__()
        self.context_names = tuple(segmenter.context_modules())
        for name, module in segmenter.context_modules().items():
            self.add_module(residual_name(name), copy.deepcopy(module))
        ctx, dec = segmenter.context_channels, segmenter.decoder_channels
        self.atten_aspp_final = nn.Conv2d(ctx, dec, 1, bias=False)
        self.proj_head = None
        if projector:
            # the paper's head is built as it always was (so its global-RNG draws, and hence the RPL
            # head's kaiming init that follows in RPLNet.init_from_segmenter, stay as before); any
            # other architecture or depth is built without touching the global RNG, so the
            # projector choice cannot shift the RPL head's init
            self.proj_head = ProjectionHead(ctx, dec, "linear")
            if projector_kind != "linear" or (embed_dim or dec) != dec:
                with torch.random.fork_rng(devices=[]):
                    self.proj_head = ProjectionHead(ctx, embed_dim or dec, projector_kind)

    def context_copies(self) -> dict[str, nn.Module]:
        """The copies, keyed like ``segmenter.context_modules()``."""
        return {name: getattr(self, residual_name(name)) for name in self.context_names}


def _insert_child(parent: nn.Module, name: str, child: nn.Module, before: str | None) -> None:
    """Register ``child`` on ``parent`` just before child ``before`` (state-dict order), else last."""
    items = [(k, v) for k, v in parent._modules.items() if k != name]
    parent._modules.clear()
    placed = False
    for k, v in items:
        if k == before and not placed:
            parent._modules[name] = child
            placed = True
        parent._modules[k] = v
    if not placed:
        parent._modules[name] = child


class RPLNet(nn.Module):
    """RPL on any registered DeepLabV3+ segmenter.

    Args:
        segmenter: a :class:`~oodbench.segmenters.base.DeepLabV3PlusBase`; it becomes ``branch1``
            and receives the ``residual_block`` child.
        projector: build the CoroCL projector (``rev3.pth`` has it, ``res.pth`` does not).
        init: run :meth:`init_from_segmenter` now (turn off when a full RPL checkpoint follows).
        projector_kind: the projector architecture (:data:`PROJECTORS`; default the paper's single layer).
        embed_dim: the embedding depth R (default: the decoder width, 304 on the paper's model).

    ``forward(x)`` returns ``(out1, out2, proj)``; ``proj`` is ``None`` in eval mode or without a
    projector.
    """

    def __init__(self, segmenter: DeepLabV3PlusBase, projector: bool = True, init: bool = True,
                 projector_kind: str = "linear", embed_dim: int | None = None) -> None:
        super().__init__()
        if not isinstance(segmenter, DeepLabV3PlusBase):
            raise TypeError(f"RPLNet needs a DeepLabV3PlusBase segmenter, got {type(segmenter).__name__}")
        if embed_dim is not None and embed_dim < 1:
            raise UsageError(f"--embed-dim must be >= 1, got {embed_dim}")
        self.branch1 = segmenter
        _insert_child(segmenter, "residual_block", ResidualBlock(segmenter, projector, projector_kind, embed_dim),
                      segmenter.residual_anchor)
        self.projector = projector
        self.projector_kind = projector_kind
        self.embed_dim = embed_dim or segmenter.decoder_channels
        #: sha256 of the checkpoint file loaded into the network (set by the RPL loader).
        self.checkpoint_sha256: str | None = None
        if init:
            self.init_from_segmenter()
        self.freeze()
        self.train(self.training)

    # -- structure --------------------------------------------------------------------------
    @property
    def segmenter(self) -> DeepLabV3PlusBase:
        return self.branch1

    @property
    def residual_block(self) -> ResidualBlock:
        return self.branch1.residual_block

    @property
    def pretrained_cfg(self):
        return self.branch1.pretrained_cfg

    @property
    def num_classes(self) -> int:
        return self.branch1.num_classes

    # -- initialisation / freezing ----------------------------------------------------------
    @torch.no_grad()
    def init_from_segmenter(self, generator: torch.Generator | None = None) -> None:
        """Copy the context modules (BN stats included) and kaiming-init the RPL head and projector.

        Call it after loading the closed-set weights into ``branch1``. ``generator`` makes the
        kaiming draws reproducible.
        """
        seg, rb = self.branch1, self.residual_block
        for name, module in seg.context_modules().items():
            setattr(rb, residual_name(name), copy.deepcopy(module))  # same slot, same order
        ref = next(iter(seg.context_modules().values()))
        p = next(ref.parameters())
        kw = {"device": p.device, "dtype": p.dtype}
        ctx, dec = seg.context_channels, seg.decoder_channels
        rb.atten_aspp_final = nn.Conv2d(ctx, dec, 1, bias=False, **kw)
        nn.init.kaiming_normal_(rb.atten_aspp_final.weight, generator=generator)
        if self.projector:
            rb.proj_head = ProjectionHead(ctx, self.embed_dim, self.projector_kind).to(**kw)
            rb.proj_head.reset_parameters(generator)
        self.freeze()

    def freeze(self) -> None:
        """``requires_grad`` only on the residual block (the official substring rule, §3)."""
        for p in self.parameters():
            p.requires_grad_(False)
        for p in self.residual_block.parameters():
            p.requires_grad_(True)

    def train(self, mode: bool = True) -> "RPLNet":
        """Everything in eval mode except ``residual_block`` (which follows ``mode``)."""
        super().train(mode)
        self.branch1.eval()
        self.residual_block.train(mode)
        return self

    def trainable_parameters(self, lr: float | None = None, head_lr_mult: float = 10.0) -> list[dict]:
        """Optimizer groups ``[head (atten_aspp_final, 10x lr), rest of the residual block]``.

        Each group carries ``name`` and ``lr_mult``; with ``lr`` also ``lr = lr * lr_mult``.
        """
        rb = self.residual_block
        head = list(rb.atten_aspp_final.parameters())
        head_ids = {id(p) for p in head}
        rest = [p for p in rb.parameters() if id(p) not in head_ids]
        groups = [{"name": "rpl_head", "params": head, "lr_mult": head_lr_mult},
                  {"name": "residual", "params": rest, "lr_mult": 1.0}]
        if lr is not None:
            for g in groups:
                g["lr"] = lr * g["lr_mult"]
        return groups

    def named_trainable(self) -> Iterator[tuple[str, nn.Parameter]]:
        return ((n, p) for n, p in self.named_parameters() if p.requires_grad)

    # -- forward ----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        seg, rb = self.branch1, self.residual_block
        low, deep = seg.features(x)
        dec0 = seg.decoder_input(low, seg.context(deep))
        r = seg.interpolate(seg.context(deep, rb.context_copies()), dec0.shape[-2:])
        res = rb.atten_aspp_final(r)
        size = x.shape[-2:]
        out1 = seg.interpolate(seg.classify(dec0), size)
        out2 = seg.interpolate(seg.classify(dec0 + res), size)
        proj = rb.proj_head(r) if (rb.training and rb.proj_head is not None) else None
        return out1, out2, proj
