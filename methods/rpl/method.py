r"""The ``rpl`` method: anomaly = blurred free energy of the RPL logits, segmentation = closed-set logits.

Inference (``yyliu01/RPL:rpl_corocl.code/valid.py`` ``compute_anomaly_score(mode='energy')``;
``docs/rpl-official.md`` §7, §12.12): with ``out1, out2, _ = RPLNet(x)``

.. math::
    s(x) = \mathrm{GaussianBlur}_{k=7,\sigma=1,\text{reflect}}\Big(-\log\sum_{c=1}^{19} e^{\text{out2}_c}\Big)

(higher = more anomalous), computed in float32 outside autocast with ``torch.logsumexp`` and
torchvision's ``gaussian_blur`` (reflect padding, as ``torchvision.transforms.GaussianBlur`` in the
reference). The segmentation logits are the untouched closed-set ``out1``. Single scale, native
resolution, no flip.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from oodbench.errors import UsageError

from ..base import Method, register_method

__all__ = ["RPL", "energy_score", "blur_score"]

BLUR_KERNEL = 7
BLUR_SIGMA = 1.0


def energy_score(logits: torch.Tensor) -> torch.Tensor:
    """``-logsumexp`` over the class dimension, in float32: ``[B,C,H,W] -> [B,H,W]``."""
    return -torch.logsumexp(logits.float(), dim=1)


def blur_score(score: torch.Tensor, kernel_size: int = BLUR_KERNEL, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """Gaussian blur of ``[B,H,W]`` maps with reflect padding (torchvision's ``gaussian_blur``)."""
    from torchvision.transforms.v2.functional import gaussian_blur

    return gaussian_blur(score.unsqueeze(1), kernel_size=[kernel_size, kernel_size], sigma=[sigma, sigma]).squeeze(1)


@register_method
class RPL(Method):
    """Residual Pattern Learning (+ CoroCL) on a frozen DeepLabV3+.

    Args:
        segmenter: registered segmenter name (the official model is ``deeplabv3plus_wrn38``).
        checkpoint: an RPL checkpoint (official ``rev3.pth``/``res.pth`` or ours); a closed-set
            segmenter checkpoint is also accepted (the residual block is then initialised from it
            and must be trained: :meth:`untrained_reason` says so, and the runner refuses it).
        segmenter_checkpoint: closed-set weights to start training from (ignored when
            ``checkpoint`` is given).
        blur: apply the 7x7, sigma 1 Gaussian blur (the official protocol).
        projector: build the CoroCL projector; ``None`` (default) reads it from the checkpoint
            keys (``rev3.pth`` has one, ``res.pth`` does not) and is ``True`` without a checkpoint.
        amp: ``"bf16"``/``"fp16"`` autocast for the network on CUDA (the score stays float32).
    """

    name = "rpl"
    paper = ("Liu et al., Residual Pattern Learning for Pixel-wise Out-of-Distribution Detection "
             "in Semantic Segmentation, ICCV 2023")
    requires_fit = True  # without an RPL checkpoint; an instance loaded from one sets it False
    fit_command = "oodbench train --method rpl ... (then oodbench run --checkpoint CKPT)"

    def __init__(
        self,
        segmenter: str = "deeplabv3plus_wrn38",
        checkpoint: str | os.PathLike | None = None,
        segmenter_checkpoint: str | os.PathLike | None = None,
        blur: bool = True,
        projector: bool | None = None,
        amp: str | None = None,
        **segmenter_kwargs: Any,
    ) -> None:
        super().__init__()
        from oodbench import segmenters

        from .weights import describe_missing_rpl, is_rpl_state, load_rpl_state, projector_spec, read_rpl_file
        from .model import RPLNet

        self.segmenter_name = segmenter
        self.blur = bool(blur)
        self.amp = amp
        self.checkpoint = str(checkpoint) if checkpoint is not None else None
        #: the split the loaded checkpoint was selected on (a ``best-*.pth``), else ``None``
        self.selected_on: str | None = None
        #: the training configuration the checkpoint records (recipe, ablations), for hparams
        self.training: dict[str, Any] = {}
        source = checkpoint if checkpoint is not None else segmenter_checkpoint
        if source is None:
            self.net = RPLNet(segmenters.build(segmenter, **segmenter_kwargs),
                              projector=True if projector is None else bool(projector))
            self.loaded_rpl = False
            self._untrained = ("RPL would score with random weights (segmenter and residual block): no "
                               "--checkpoint given; pass --checkpoint with an RPL checkpoint "
                               "(rev3.pth / res.pth, or one written by `oodbench train`)")
        else:
            sd, report, meta = read_rpl_file(source)
            rpl_file = is_rpl_state(sd)
            spec = projector_spec(sd) if rpl_file else None
            if projector is None:
                projector = spec is not None if rpl_file else True
            kind, depth = spec if spec is not None else ("linear", None)
            if checkpoint is not None and rpl_file:
                self.selected_on = meta.get("selected_on")
                self.training = dict(meta.get("train", {}))
            with torch.device("meta"):  # weights come from the file: skip the random init
                seg = segmenters.build(segmenter, **segmenter_kwargs)
                net = RPLNet(seg, projector=bool(projector), init=False, projector_kind=kind, embed_dim=depth)
            load_rpl_state(net, sd, report, strict=True, assign=True)
            net.freeze()
            self.net = net
            self.loaded_rpl = rpl_file
            if checkpoint is not None:
                self._untrained = describe_missing_rpl(sd, str(checkpoint))
            else:
                self._untrained = (f"RPL's residual block is initialised from segmenter checkpoint "
                                   f"{segmenter_checkpoint}, not trained; pass --checkpoint with an RPL "
                                   "checkpoint or train one (`oodbench train`)")
        self.requires_fit = not self.loaded_rpl
        self.net.eval()
        #: the segmenter's data contract: normalisation and label space (Method.preprocessing)
        self.pretrained_cfg = self.net.pretrained_cfg

    # runner / evaluator hooks ---------------------------------------------------------------
    @property
    def model(self):
        """The network."""
        return self.net

    @property
    def checkpoint_sha256(self) -> str | None:
        return self.net.checkpoint_sha256

    @property
    def training_seed(self) -> int | None:
        """The RPL training seed when an RPL checkpoint was loaded (a segmenter-only file's seed
        is not RPL's)."""
        return getattr(self.net, "training_seed", None) if self.loaded_rpl else None

    def to(self, device: str | torch.device) -> "RPL":
        super().to(device)
        self.net.to(self.device)
        return self

    def untrained_reason(self) -> str | None:
        """What the weights lack (no file, a segmenter-only file), until :meth:`fit` has run."""
        if not self.requires_fit:
            return None
        return getattr(self, "_untrained", None) or super().untrained_reason()

    def hparams(self) -> dict[str, Any]:
        """Inference settings, plus the training recipe/ablations the checkpoint records (``train_*``)."""
        hp = {"segmenter": self.segmenter_name, "blur": self.blur, "blur_kernel": BLUR_KERNEL,
              "blur_sigma": BLUR_SIGMA, "projector": self.net.projector, "score": "energy(out2)"}
        hp.update({f"train_{k}": v for k, v in self.training.items()})
        return hp

    # inference --------------------------------------------------------------------------------
    def score(self, out2: torch.Tensor) -> torch.Tensor:
        """Anomaly map ``[B,H,W]`` from the RPL logits (float32, outside autocast)."""
        with torch.autocast(device_type=out2.device.type, enabled=False):
            s = energy_score(out2)
            return blur_score(s) if self.blur else s

    @torch.inference_mode()
    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(anomaly [B,H,W], out1 logits [B,C,H,W])`` for a normalised batch."""
        from oodbench.segmenters.inference import predict_full

        if self.net.training:
            self.net.eval()
        out1, out2, _ = predict_full(self.net, x, amp=self.amp)
        return self.score(out2), out1

    def fit(self, config: Any = None, **kwargs: Any) -> "RPL":
        """Train the residual block of this method's network in place.

        ``config`` is an ``oodbench.methods.rpl.train.RPLTrainConfig`` (or a dict of its fields);
        ``kwargs`` go to ``train_rpl`` (``city``, ``coco``, ``ctx``). The training result is kept
        as ``self.last_fit``.
        """
        from .train import RPLTrainConfig, train_rpl

        if config is None:
            raise UsageError("rpl.fit needs a training config (RPLTrainConfig or a dict of its fields)")
        if isinstance(config, dict):
            config = RPLTrainConfig(**config)
        self.last_fit = train_rpl(config, model=self.net, **kwargs)
        self.requires_fit = False
        self.device = next(self.net.parameters()).device
        self.net.eval()
        return self
