"""Example oodbench method plugins: a post-hoc score and a fitted method (see README.md).

Everything oodbench needs is declared on the class, nothing is probed:

* ``name`` / ``paper`` -- the registry name and the citation in records;
* ``pretrained_cfg`` -- normalisation (mean/std) and label space of the logits;
* ``requires_fit`` / ``fit`` / ``state_dict_fitted`` / ``load_fitted`` -- for the fitted method;
* ``hparams()`` -- what goes into the prediction fingerprint and the records.
"""
from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn

from oodbench.methods import FitBatch, Method, PostHocMethod
from oodbench.segmenters.base import PretrainedCfg

__all__ = ["ColourLogits", "LogitMargin", "ColourGaussian", "COLOUR_CFG"]

#: the data contract of ColourLogits: ImageNet normalisation, 3 generic classes (no Cityscapes label
#: space, so the evaluator uses a split's own ids)
COLOUR_CFG = PretrainedCfg(name="colour_logits", num_classes=3)


class ColourLogits(nn.Module):
    """A fixed 1x1 "segmenter": logits = W x + b with W = I (3 classes = the 3 normalised channels), b = 0."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class LogitMargin(PostHocMethod):
    """Post-hoc: ``score = -(z_(1) - z_(2))``, minus the margin between the two largest logits."""

    name = "example-margin"
    paper = "oodbench example plugin"

    def __init__(self, **kwargs: Any) -> None:
        if "segmenter" not in kwargs:  # our own fixed module, with its declared data contract
            kwargs.update(segmenter=ColourLogits(), pretrained_cfg=COLOUR_CFG)
        super().__init__(**kwargs)

    @staticmethod
    def score(logits: torch.Tensor) -> torch.Tensor:
        top2 = logits.topk(2, dim=1).values
        return -(top2[:, 0] - top2[:, 1])


class ColourGaussian(Method):
    """Fitted: per-channel mean and variance of the normalised training pixels (population variance),
    ``score = sum_c (x_c - mu_c)^2 / var_c``; logits from :class:`ColourLogits`."""

    name = "example-colour-gauss"
    paper = "oodbench example plugin"
    requires_fit = True
    pretrained_cfg = COLOUR_CFG

    def __init__(self) -> None:
        super().__init__()
        self.net = ColourLogits().eval()
        self.mean: torch.Tensor | None = None
        self.var: torch.Tensor | None = None

    def to(self, device):
        super().to(device)
        self.net.to(self.device)
        return self

    def fit(self, batches: Iterable[FitBatch]) -> "ColourGaussian":
        n, s1, s2 = 0, torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
        for batch in batches:  # streaming sums: never all pixels at once
            x = batch.image.double().transpose(0, 1).reshape(3, -1).cpu()
            n += x.shape[1]
            s1 += x.sum(1)
            s2 += (x * x).sum(1)
        mean = s1 / n
        return self.load_fitted({"mean": mean, "var": s2 / n - mean ** 2})

    def state_dict_fitted(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean, "var": self.var}

    def load_fitted(self, state: dict[str, torch.Tensor]) -> "ColourGaussian":
        if set(state) != {"mean", "var"} or state["mean"].shape != (3,) or state["var"].shape != (3,):
            raise ValueError(f"example-colour-gauss state needs mean [3] and var [3], got {sorted(state)}")
        self.mean, self.var = state["mean"].double(), state["var"].double()
        self.requires_fit = False
        return self

    @torch.inference_mode()
    def predict(self, x: torch.Tensor):
        mu = self.mean.to(x.device, torch.float32).view(1, 3, 1, 1)
        var = self.var.to(x.device, torch.float32).view(1, 3, 1, 1)
        return ((x.float() - mu) ** 2 / var).sum(1), self.net(x)
