"""Closed-set segmenter training step (deeplabv3plus_small, 128x256 crops, batch 8, AdamW): the
synthetic closed-set model's 540 iterations within 600 CPU s (was a timed assert in
tests/test_training_segmenter.py); the target is stated as 540 x the median step. The smoke run
uses 32x64 crops, batch 2."""
from __future__ import annotations

import numpy as np
import torch

from oodbench.training.segmenter import SegmenterTrainConfig, SegmenterTrainer


class RandomCity:
    """Cityscapes-sized stand-in (uint8 HWC image, trainId label): the step's cost does not depend on
    the content."""

    def __init__(self, n: int, h: int, w: int) -> None:
        self.n, self.h, self.w = n, h, w

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        rng = np.random.default_rng(i)
        return (rng.integers(0, 256, (self.h, self.w, 3), dtype=np.uint8),
                rng.integers(0, 19, (self.h, self.w), dtype=np.uint8))


def test_segmenter_train_step(benchmark, record, full_size, tmp_path):
    crop, batch = ((128, 256), 8) if full_size else ((32, 64), 2)
    cfg = SegmenterTrainConfig(out_dir=str(tmp_path), model="deeplabv3plus_small", crop_size=crop, batch_size=batch,
                               epochs=1, optimizer="adamw", lr=2e-3, weight_decay=1e-4, scale_min=0.75,
                               scale_max=1.5, num_workers=0, progress=False, seed=0)
    torch.manual_seed(0)
    trainer = SegmenterTrainer(cfg, train_data=RandomCity(2 * batch, 2 * crop[0], 2 * crop[1]))
    trainer.setup()
    first = next(iter(trainer.make_batches(0, 0)))
    steps = iter(range(10**6))
    out = benchmark.pedantic(lambda: trainer.train_step(first, next(steps)), rounds=5 if full_size else 1,
                             warmup_rounds=1 if full_size else 0)
    assert np.isfinite(out["total"])
    record("training/step", benchmark)
