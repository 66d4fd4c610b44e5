"""Post-hoc anomaly scores on closed-set logits. Each is a pure function of the logits."""
from __future__ import annotations

import torch

from oodbench.errors import UsageError

from .base import PostHocMethod, register_method

__all__ = ["MaxSoftmax", "Energy", "MaxLogit", "Entropy"]


@register_method
class MaxSoftmax(PostHocMethod):
    r"""Maximum softmax probability (MSP).

    .. math:: s(x) = -\max_c \operatorname{softmax}(z)_c

    Paper: Hendrycks & Gimpel, "A Baseline for Detecting Misclassified and Out-of-Distribution
    Examples in Neural Networks", ICLR 2017. Reference: ``hendrycks/anomaly-seg`` (``msp``).
    """

    name = "msp"
    paper = "Hendrycks & Gimpel, ICLR 2017"

    @staticmethod
    def score(logits: torch.Tensor) -> torch.Tensor:
        return -torch.softmax(logits, dim=1).amax(dim=1)


@register_method
class Energy(PostHocMethod):
    r"""Free energy with temperature :math:`T`.

    .. math:: s(x) = -T \log \sum_c \exp(z_c / T)

    Paper: Liu et al., "Energy-based Out-of-distribution Detection", NeurIPS 2020.
    Computed with the numerically stable ``torch.logsumexp``.
    """

    name = "energy"
    paper = "Liu et al., NeurIPS 2020"

    def __init__(self, temperature: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        if not temperature > 0:
            raise UsageError(f"energy: temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def score(self, logits: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        t = self.temperature
        return -t * torch.logsumexp(logits / t, dim=1)

    def hparams(self) -> dict:
        return {**super().hparams(), "temperature": self.temperature}


@register_method
class MaxLogit(PostHocMethod):
    r"""Maximum logit.

    .. math:: s(x) = -\max_c z_c

    Paper: Hendrycks et al., "Scaling Out-of-Distribution Detection for Real-World Settings",
    ICML 2022 (introduced StreetHazards).
    """

    name = "maxlogit"
    paper = "Hendrycks et al., ICML 2022"

    @staticmethod
    def score(logits: torch.Tensor) -> torch.Tensor:
        return -logits.amax(dim=1)


@register_method
class Entropy(PostHocMethod):
    r"""Predictive entropy of the softmax.

    .. math:: s(x) = -\sum_c p_c \log p_c, \quad p = \operatorname{softmax}(z)

    Computed from ``log_softmax`` so that :math:`p_c \log p_c = 0` where :math:`p_c` underflows.
    """

    name = "entropy"
    paper = "Shannon entropy baseline (e.g. Chan et al., ICCV 2021)"

    @staticmethod
    def score(logits: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(logits, dim=1)
        return -(logp.exp() * logp).sum(dim=1)
