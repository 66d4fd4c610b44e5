r"""Periodic validation during training: an anomaly monitor on the labelled splits that exist.

:func:`make_anomaly_validator` returns ``validator(model, iteration) -> dict`` for
:class:`~oodbench.methods.rpl.train.RPLTrainer`: for each labelled split under the data root
(``oodbench.datasets.find_available``, or the names given) it runs the model in eval mode at native
resolution, scores every pixel with ``score_fn(outputs)`` (RPL: blurred ``-logsumexp(out2)``,
:meth:`oodbench.methods.rpl.RPL.score`) and streams the frames into
:class:`oodbench.metrics.ExactPixelAccumulator` (pooled over the split, labels 0/1, 255 ignored),
reporting ``<split>/auprc``, ``<split>/auroc`` and ``<split>/fpr95`` (first threshold with
TPR >= 0.95) -- the same numbers ``oodbench evaluate --protocol exact`` gives for those frames.

It is a training-time monitor: ``max_frames`` may cut a split short; a split (or cut) without
anomaly or inlier pixels reports NaN with a message instead of stopping the training.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable, Sequence

import numpy as np
import torch

from oodbench.errors import UsageError

from .transforms import normalize

__all__ = ["make_anomaly_validator"]


def make_anomaly_validator(
    data_root: str | os.PathLike,
    splits: Sequence[str] | str = "all",
    score_fn: Callable[[Any], torch.Tensor] | None = None,
    max_frames: int | None = None,
    device: str | torch.device | None = None,
    check_count: bool = True,
) -> Callable[[torch.nn.Module, int], dict[str, float]]:
    """A ``validator(model, iteration)`` computing AuPRC, AuROC and FPR95 per labelled split (module doc).

    Args:
        splits: split names, or ``"all"`` for every labelled split found under ``data_root``.
        score_fn: model outputs -> ``[B,H,W]`` anomaly map; default: RPL's (blurred energy of out2).
        max_frames: use at most this many frames per split (``None``: all).
    """
    from oodbench import datasets as D
    from oodbench.metrics import ExactPixelAccumulator, MetricInputError

    if splits == "all":
        names, _missing = D.find_available(data_root)
    else:
        names = list(splits)
    if not names:
        raise UsageError(f"validation: no labelled anomaly split found under {data_root}")
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
            acc = ExactPixelAccumulator()
            for i, fid in enumerate(split.frame_ids()):
                if max_frames is not None and i >= max_frames:
                    break
                frame = split.load(fid)
                x = normalize(frame.image, mean, std)[None].to(dev)
                acc.update(score_fn(model(x))[0].float().cpu().numpy(), np.asarray(frame.label), frame_id=f"{name}/{fid}")
            try:
                res = acc.compute()
            except MetricInputError as exc:
                print(f"validation at iteration {iteration}: {name}: {exc}", file=sys.stderr)
                res = {k: float("nan") for k in ("auprc", "auroc", "fpr95")}
            for key in ("auprc", "auroc", "fpr95"):
                out[f"{name}/{key}"] = float(res[key])
        return out

    return validate
