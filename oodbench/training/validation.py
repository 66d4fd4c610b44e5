r"""Periodic validation during training: an anomaly monitor on the labelled splits that exist.

:func:`make_anomaly_validator` returns ``validator(model, iteration) -> dict`` for
:class:`~oodbench.methods.rpl.train.RPLTrainer`: for each labelled split under the data root
(``oodbench.datasets.find_available``, or the names given) it runs the model in eval mode at native
resolution, scores every pixel with ``score_fn(outputs)`` (RPL: blurred ``-logsumexp(out2)``,
:meth:`oodbench.methods.rpl.RPL.score`), pools the pixels labelled 0/1 of the whole split and
reports, per split,

.. math::
    \mathrm{AP} = \sum_n (R_n - R_{n-1})\,P_n \ \text{(step-wise, over distinct thresholds,
    sklearn's definition)},\qquad
    \mathrm{FPR95} = \mathrm{FPR} \text{ at the first threshold with } \mathrm{TPR} \ge 0.95.

This is a training-time *monitor* (exact, but pixels are held in memory and ``max_frames`` can cut
a split short); the numbers for papers and leaderboards come from ``oodbench evaluate``.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .transforms import normalize

__all__ = ["pooled_ap_fpr95", "make_anomaly_validator"]


def pooled_ap_fpr95(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """``(AP, FPR@95%TPR)`` of pooled pixels (label 1 positive, 0 negative; others ignored)."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    keep = (y == 0) | (y == 1)
    s, y = s[keep], y[keep] == 1
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan"), float("nan")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # last index of each distinct threshold
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    recall = tp / n_pos
    precision = tp / (last + 1)
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    k = int(np.searchsorted(recall, 0.95, side="left"))
    return ap, float(fp[min(k, fp.size - 1)] / n_neg)


def make_anomaly_validator(
    data_root: str | os.PathLike,
    splits: Sequence[str] | str = "all",
    score_fn: Callable[[Any], torch.Tensor] | None = None,
    max_frames: int | None = None,
    device: str | torch.device | None = None,
    check_count: bool = True,
) -> Callable[[torch.nn.Module, int], dict[str, float]]:
    """A ``validator(model, iteration)`` computing AP and FPR95 per labelled split (module doc).

    Args:
        splits: split names, or ``"all"`` for every labelled split found under ``data_root``.
        score_fn: model outputs -> ``[B,H,W]`` anomaly map; default: RPL's (blurred energy of out2).
        max_frames: use at most this many frames per split (``None``: all).
    """
    from oodbench import datasets as D

    if splits == "all":
        names, _missing = D.find_available(data_root)
    else:
        names = list(splits)
    if not names:
        raise ValueError(f"validation: no labelled anomaly split found under {data_root}")
    if score_fn is None:
        from oodbench.methods.rpl.method import blur_score, energy_score

        def score_fn(outputs: Any) -> torch.Tensor:
            return blur_score(energy_score(outputs[1]))

    split_objs = {n: D.get_split(n, data_root, check_count=check_count) for n in names}

    @torch.no_grad()
    def validate(model: torch.nn.Module, iteration: int) -> dict[str, float]:
        dev = torch.device(device) if device is not None else next(model.parameters()).device
        cfg = getattr(model, "pretrained_cfg", None)
        mean = getattr(cfg, "mean", (0.485, 0.456, 0.406))
        std = getattr(cfg, "std", (0.229, 0.224, 0.225))
        out: dict[str, float] = {}
        for name, split in split_objs.items():
            scores, labels = [], []
            for i, fid in enumerate(split.frame_ids()):
                if max_frames is not None and i >= max_frames:
                    break
                frame = split.load(fid)
                x = normalize(frame.image, mean, std)[None].to(dev)
                scores.append(score_fn(model(x))[0].float().cpu().numpy())
                labels.append(np.asarray(frame.label))
            ap, fpr = pooled_ap_fpr95(np.concatenate([a.ravel() for a in scores]),
                                      np.concatenate([a.ravel() for a in labels]))
            out[f"{name}/AP"] = ap
            out[f"{name}/FPR95"] = fpr
        return out

    return validate
