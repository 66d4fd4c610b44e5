"""Figures for ``oodbench demo`` (and anyone with a prediction store): PR/ROC curves per split,
and anomaly-map overlays (image | ground truth | score heat maps). Headless matplotlib (Agg)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .store import PredictionStore

__all__ = ["plot_curves", "plot_overlays", "pooled_curve"]

SYNTHETIC_NOTE = "computed on oodbench's SYNTHETIC benchmark"


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def pooled_curve(split, store: PredictionStore) -> dict[str, np.ndarray]:
    """Exact pooled ROC and PR points of the stored predictions (void pixels excluded)."""
    from oodbench.metrics import ExactPixelAccumulator

    acc = ExactPixelAccumulator()
    for fid in split.frame_ids():
        frame = split.load_labels(fid)
        acc.update(store.read_anomaly(split.key, fid), frame.label, frame_id=fid)
    return acc.curve()


def plot_curves(splits: Sequence, predictions: Path, methods: Sequence[str], out_dir: Path) -> list[Path]:
    """One PNG per split with the PR and ROC curves of every method."""
    plt = _plt()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for split in splits:
        fig, (ax_pr, ax_roc) = plt.subplots(1, 2, figsize=(10, 4.2))
        for name in methods:
            store = PredictionStore(predictions, name)
            if store.missing(split.key, split.frame_ids()):
                continue
            c = pooled_curve(split, store)
            ax_pr.plot(c["recall"], c["precision"], label=name, drawstyle="steps-post")
            ax_roc.plot(c["roc_fpr"], c["roc_tpr"], label=name)
        ax_pr.set(xlabel="recall", ylabel="precision", title="precision-recall", xlim=(0, 1), ylim=(0, 1.02))
        ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC", xlim=(0, 1), ylim=(0, 1.02))
        ax_roc.axhline(0.95, color="grey", lw=0.5, ls="--")
        ax_pr.legend(loc="lower left", fontsize=8)
        fig.suptitle(f"{split.name} — {SYNTHETIC_NOTE if split.synthetic else 'pooled pixels'}")
        fig.tight_layout()
        path = out_dir / f"curves_{split.name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def _normalise(s: np.ndarray, valid: np.ndarray) -> np.ndarray:
    vals = s[valid] if valid.any() else s.ravel()
    lo, hi = np.percentile(vals, [1, 99])
    return np.clip((s - lo) / max(hi - lo, 1e-12), 0, 1)


def plot_overlays(splits: Sequence, predictions: Path, methods: Sequence[str], out_dir: Path,
                  frames_per_split: int = 2) -> list[Path]:
    """For a few frames per split: image | ground truth | one score heat map per method."""
    plt = _plt()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for split in splits:
        stores = [PredictionStore(predictions, m) for m in methods]
        ids = split.frame_ids()[:frames_per_split]
        ncol = 2 + len(methods)
        fig, axes = plt.subplots(len(ids), ncol, figsize=(2.6 * ncol, 1.6 * len(ids) + 0.6), squeeze=False)
        for row, fid in enumerate(ids):
            frame = split.load(fid)
            label = frame.label
            axes[row, 0].imshow(frame.image)
            gt = np.zeros((*label.shape, 3), np.uint8)
            gt[label == 1] = (255, 60, 60)
            gt[label == 255] = (90, 90, 90)
            axes[row, 1].imshow(gt)
            valid = label != 255
            for k, store in enumerate(stores):
                s = store.read_anomaly(split.key, fid).astype(np.float32)
                axes[row, 2 + k].imshow(_normalise(s, valid), cmap="inferno", vmin=0, vmax=1)
            if row == 0:
                for ax, title in zip(axes[0], ["image", "ground truth (red anomaly, grey void)", *methods]):
                    ax.set_title(title, fontsize=8)
        for ax in axes.ravel():
            ax.axis("off")
        fig.suptitle(f"{split.name} — {SYNTHETIC_NOTE if split.synthetic else ''}", fontsize=9)
        fig.tight_layout()
        path = out_dir / f"overlay_{split.name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths
