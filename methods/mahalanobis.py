r"""Class-conditional Gaussian (Mahalanobis distance) on the segmenter's decoder features.

Paper: K. Lee, K. Lee, H. Lee, J. Shin, "A Simple Unified Framework for Detecting Out-of-Distribution
Samples and Adversarial Attacks", NeurIPS 2018, Sec. 2 (eq. 1-2); applied per pixel to segmentation
features as in the SegmentMeIfYouCan baselines (Chan et al., NeurIPS 2021 Datasets track, "Mahalanobis").
Only the generative classifier is used here: no input pre-processing, no feature ensemble.

Fit: on the decoder features :math:`f(x) \in \mathbb{R}^D` (``dec0`` of the DeepLabV3+ decomposition,
at the decoder stride) of every labelled training pixel (train ids resized by nearest neighbour to
the feature map; 255 ignored), the class means and one shared covariance

.. math::
    \mu_c = \frac{1}{N_c} \sum_{y_i = c} f_i, \qquad
    \Sigma = \frac{1}{N} \sum_c \sum_{y_i = c} (f_i - \mu_c)(f_i - \mu_c)^\top
           = \frac{1}{N}\Big(\sum_i f_i f_i^\top - \sum_c N_c\, \mu_c \mu_c^\top\Big),

from streaming float64 sums (:math:`N_c`, :math:`\sum f`, :math:`\sum f f^\top`): memory is
:math:`O(C D + D^2)` whatever the number of pixels. The precision is
:math:`P = (\Sigma + \lambda\, \bar s\, I)^{-1}` with :math:`\bar s` the mean variance
(:math:`\operatorname{tr}\Sigma / D`) and :math:`\lambda` = ``ridge`` (default ``1e-6``; the
paper inverts :math:`\Sigma` directly, which fails for rank-deficient features).

Score (higher = more anomalous), over the classes seen in training, computed at the decoder
stride and resized bilinearly (the segmenter's own ``interpolate``) to the input:

.. math:: s(x) = \min_c\, (f(x) - \mu_c)^\top P\, (f(x) - \mu_c)
"""
from __future__ import annotations

from typing import Any, Iterable

import torch
import torch.nn.functional as F

from oodbench.errors import UsageError

from .base import FitBatch, SegmenterMethod, register_method

__all__ = ["Mahalanobis", "GaussianStatistics", "min_mahalanobis"]


class GaussianStatistics:
    """Streaming sums of labelled feature vectors: counts, per-class sums, one scatter matrix (float64)."""

    def __init__(self, num_classes: int, dim: int, device: torch.device | str = "cpu") -> None:
        self.count = torch.zeros(num_classes, dtype=torch.float64, device=device)
        self.sum = torch.zeros(num_classes, dim, dtype=torch.float64, device=device)
        self.scatter = torch.zeros(dim, dim, dtype=torch.float64, device=device)

    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """``features [P,D]`` and ``labels [P]`` (classes ``0..C-1``; other values are skipped)."""
        keep = (labels >= 0) & (labels < self.count.shape[0])
        f, y = features[keep].double(), labels[keep].long()
        self.count.index_add_(0, y, torch.ones(y.shape[0], dtype=torch.float64, device=y.device))
        self.sum.index_add_(0, y, f)
        self.scatter += f.T @ f

    def finalize(self, ridge: float) -> dict[str, torch.Tensor]:
        """``means [C,D]``, shared ``covariance [D,D]``, ``precision [D,D]``, ``count [C]``."""
        n = self.count.sum()
        if n == 0:
            raise ValueError("mahalanobis.fit: no labelled pixel in the training batches")
        seen = self.count > 0
        means = torch.where(seen[:, None], self.sum / self.count.clamp_min(1)[:, None], torch.zeros_like(self.sum))
        between = (means * self.count[:, None]).T @ means
        cov = (self.scatter - between) / n
        cov = (cov + cov.T) / 2
        dim = cov.shape[0]
        scale = torch.trace(cov) / dim
        eye = torch.eye(dim, dtype=cov.dtype, device=cov.device)
        precision = torch.linalg.inv(cov + ridge * (scale if scale > 0 else 1.0) * eye)
        return {"means": means.cpu(), "covariance": cov.cpu(), "precision": ((precision + precision.T) / 2).cpu(),
                "count": self.count.cpu()}


def min_mahalanobis(features: torch.Tensor, means: torch.Tensor, precision: torch.Tensor,
                    seen: torch.Tensor | None = None) -> torch.Tensor:
    """``min_c (f - mu_c)^T P (f - mu_c)`` for ``features [B,D,h,w]`` -> ``[B,h,w]`` (classes where ``seen``)."""
    b, d, h, w = features.shape
    f = features.permute(0, 2, 3, 1).reshape(-1, d).to(precision.dtype)
    fp = f @ precision                                         # [P,D]
    quad = (fp * f).sum(1, keepdim=True)                       # f^T P f
    cross = fp @ means.T                                       # mu_c^T P f
    mu_quad = ((means @ precision) * means).sum(1)[None]       # mu_c^T P mu_c
    dist = quad - 2 * cross + mu_quad                          # [P,C]
    if seen is not None:
        dist = dist.masked_fill(~seen[None], float("inf"))
    return dist.min(dim=1).values.clamp_min(0).view(b, h, w)


@register_method
class Mahalanobis(SegmenterMethod):
    """Minimum Mahalanobis distance to the class-conditional Gaussians of the decoder features
    (Lee et al., NeurIPS 2018); formula and source in the module docstring.

    Args:
        ridge: relative diagonal loading of the covariance before inversion (default ``1e-6``).
        **kwargs: the segmenter (:class:`~oodbench.methods.SegmenterMethod`); it must be a registered
            DeepLabV3+ (the decoder features come from its decomposition).
    """

    name = "mahalanobis"
    paper = "Lee et al., NeurIPS 2018 (class-conditional Gaussian, per pixel)"
    requires_fit = True

    def __init__(self, ridge: float = 1e-6, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from oodbench.segmenters.base import DeepLabV3PlusBase

        if not isinstance(self.model, DeepLabV3PlusBase):
            raise UsageError(f"mahalanobis needs a registered DeepLabV3+ segmenter (decoder features), "
                             f"got {type(self.model).__name__}")
        if not ridge >= 0:
            raise UsageError(f"mahalanobis: ridge must be >= 0, got {ridge}")
        self.ridge = float(ridge)
        self.means: torch.Tensor | None = None
        self.precision: torch.Tensor | None = None
        self.count: torch.Tensor | None = None
        self.covariance: torch.Tensor | None = None

    def hparams(self) -> dict[str, Any]:
        return {**super().hparams(), "ridge": self.ridge, "features": "decoder_input"}

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(dec0 [B,D,h,w], logits [B,C,H,W])`` of a normalised batch."""
        m = self.model
        low, deep = m.features(x)
        dec0 = m.decoder_input(low, m.context(deep))
        return dec0, m.interpolate(m.classify(dec0), x.shape[-2:])

    def fit(self, batches: Iterable[FitBatch]) -> "Mahalanobis":
        """Streaming class means and shared covariance over labelled training pixels."""
        stats = None
        for batch in batches:
            if batch.labels is None:
                raise ValueError("mahalanobis.fit needs the training labels (FitBatch.labels)")
            dec0, logits = self.features(batch.image)
            if stats is None:
                stats = GaussianStatistics(logits.shape[1], dec0.shape[1], dec0.device)
            labels = F.interpolate(batch.labels[:, None].float(), size=dec0.shape[-2:], mode="nearest")[:, 0].long()
            stats.update(dec0.permute(0, 2, 3, 1).reshape(-1, dec0.shape[1]).float(), labels.flatten())
        if stats is None:
            raise ValueError("mahalanobis.fit: the training split gave no batch")
        self.load_fitted(stats.finalize(self.ridge))
        return self

    def state_dict_fitted(self) -> dict[str, torch.Tensor]:
        if self.means is None:
            raise ValueError("mahalanobis: not fitted")
        return {"means": self.means, "precision": self.precision, "covariance": self.covariance, "count": self.count}

    def load_fitted(self, state: dict[str, torch.Tensor]) -> "Mahalanobis":
        missing = {"means", "precision", "covariance", "count"} - set(state)
        if missing:
            raise ValueError(f"mahalanobis state lacks {sorted(missing)}")
        c, d = state["means"].shape
        if state["precision"].shape != (d, d) or state["count"].shape != (c,):
            raise ValueError("mahalanobis state: means [C,D], precision [D,D], count [C] do not agree")
        if d != self.model.decoder_channels or c != self.model.num_classes:
            raise ValueError(f"mahalanobis state is for {c} classes x {d} features, the segmenter has "
                             f"{self.model.num_classes} x {self.model.decoder_channels}")
        self.means, self.precision, self.covariance, self.count = (
            state[k].double().cpu() for k in ("means", "precision", "covariance", "count"))
        self.requires_fit = False
        return self

    @torch.inference_mode()
    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.means is None:
            raise ValueError("mahalanobis: predict() before fit() or load_fitted()")
        dec0, logits = self.features(x)
        dist = min_mahalanobis(dec0.float(), self.means.to(dec0.device, torch.float32),
                               self.precision.to(dec0.device, torch.float32), (self.count > 0).to(dec0.device))
        score = self.model.interpolate(dist[:, None], x.shape[-2:])[:, 0]
        return score, logits
