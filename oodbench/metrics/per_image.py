"""StreetHazards official anomaly metrics: Hendrycks per-image mean (protocol ``streethazards``).

``hendrycks/anomaly-seg@4e7b1de`` ``eval_ood.py`` -> ``anom_utils.eval_ood_measure`` ->
``get_measures`` (docs/benchmarks.md §2.3): for every image, anomaly (label 1) is the positive class and
*every other pixel is an inlier* (no void); AUROC = ``sklearn.metrics.roc_auc_score``, AUPR =
``average_precision_score``, FPR95 = ``fpr_and_fdr_at_recall`` (nearest recall to 0.95, see
:mod:`._curves`).  Images without anomaly pixels (or without inlier pixels) are skipped, not
counted as 0.  Reported values are the arithmetic means over the used images.

Labels must be 0/1 (the adapter maps StreetHazards ``raw - 1 == 13`` to 1, everything else to 0); a
255 is an error because the official protocol ignores nothing.

State: ``rows`` (``auroc, auprc, fpr95`` per used image), ``frame_ids`` and ``skipped_ids``, all
concatenated in list order.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from oodbench.errors import UsageError

from ._base import Accumulator, MetricInputError, warn_nan
from ._curves import FPR_RULES
from ._inputs import check_pair
from ._score_store import ScoreStore

__all__ = ["HendrycksPerImageAccumulator"]


class HendrycksPerImageAccumulator(Accumulator):
    """Per-image AUROC / AUPR / FPR95, averaged over images that contain both classes."""

    name: ClassVar[str] = "streethazards"
    version: ClassVar[str] = "anomaly-seg@4e7b1de"

    def __init__(self, fpr_rule: str = "nearest_recall") -> None:
        if fpr_rule != "nearest_recall":
            raise UsageError(
                f"protocol 'streethazards' defines FPR95 as 'nearest_recall' (fpr_and_fdr_at_recall), "
                f"not {fpr_rule!r}" if fpr_rule in FPR_RULES else f"unknown fpr_rule {fpr_rule!r}")
        self.fpr_rule = fpr_rule
        super().__init__()
        self.add_state("rows", [], merge="cat", dtype=np.float64, item_shape=(3,))  # auroc, auprc, fpr95
        self.add_state("frame_ids", [], merge="cat", dtype=str, item_shape=())
        self.add_state("skipped_ids", [], merge="cat", dtype=str, item_shape=())

    def _config(self) -> dict[str, Any]:
        return {"fpr_rule": self.fpr_rule}

    def update(self, scores: Any, labels: Any, frame_id: Any = None) -> None:
        """Add one image: float scores and 0/1 labels (1 = anomaly) of the same shape."""
        where = self._frame_name(frame_id)
        name = str(frame_id) if frame_id is not None else f"#{self._num_updates}"
        s, lab = check_pair(scores, labels, where, check_finite=False)
        store = ScoreStore()
        store.add(s, lab, where)
        if store.n_void:
            raise MetricInputError(
                f"{where}: {store.n_void} pixels are labelled 255, but the StreetHazards protocol "
                "has no void (map every non-anomaly pixel to 0)")
        self._num_updates += 1
        if store.n_pos == 0 or store.n_neg == 0:
            self.skipped_ids.append(name)
            return
        summ = store.summary()
        self.rows.append((summ.auroc(), summ.average_precision(), summ.fpr_at_tpr(self.fpr_rule)[0]))
        self.frame_ids.append(name)

    def per_image(self) -> dict[str, tuple[float, float, float] | None]:
        """``frame_id -> (auroc, auprc, fpr95)``; ``None`` for skipped images."""
        out: dict[str, tuple[float, float, float] | None] = {
            fid: tuple(float(v) for v in row) for fid, row in zip(self.frame_ids, self.rows)}
        out.update({k: None for k in self.skipped_ids})
        return out

    def compute(self) -> dict[str, Any]:
        rows = np.array(self.rows, np.float64).reshape(-1, 3)
        if rows.shape[0]:
            auroc, auprc, fpr = (float(np.mean(rows[:, i])) for i in range(3))
        else:
            auroc = auprc = fpr = warn_nan("per-image mean (no image has both classes)")
        return self._result({
            "fpr_rule": self.fpr_rule,
            "auroc": auroc, "auprc": auprc, "fpr95": fpr,
            "num_frames": float(len(self.rows) + len(self.skipped_ids)),
            "num_frames_used": float(len(self.rows)),
            "num_frames_skipped": float(len(self.skipped_ids)),
        })
