"""RPL+CoroCL training step (``benchmarks/README.md`` "RPL+CoroCL training step"): target bf16
autocast >= 2x faster than fp32 (the reference code's mode) at 700x700, batch 8, WRN38, on a GPU.
Without CUDA only the fp32 row runs (autocast is CUDA-only here); the smoke run uses
deeplabv3plus_small, 64x64 crops, batch 2."""
from __future__ import annotations

import pytest
import torch

CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def rpl_root(tiny_root):
    from oodbench.datasets.coco import prepare_coco_ood

    prepare_coco_ood(tiny_root / "coco", progress=False)
    return tiny_root


@pytest.mark.benchmark(group="rpl-train-step")
@pytest.mark.parametrize("precision", ["fp32", pytest.param("bf16", marks=pytest.mark.skipif(
    not CUDA, reason="bf16 autocast is CUDA-only"))])
def test_rpl_train_step(benchmark, record, full_size, rpl_root, script, tmp_path, precision):
    bench = script("benchmarks/bench_rpl_train.py")
    if full_size and CUDA:
        segmenter, crop, batch = "deeplabv3plus_wrn38", 700, 8
    elif full_size:   # the README's CPU row
        segmenter, crop, batch = "deeplabv3plus_wrn38", 350, 2
    else:
        segmenter, crop, batch = "deeplabv3plus_small", 64, 2
    step, _, _, _ = bench.make_step(rpl_root, segmenter, "cuda" if CUDA else "cpu", precision == "bf16", crop,
                                    batch, tmp_path)
    steps = iter(range(10**6))
    out = benchmark.pedantic(lambda: step(next(steps)), rounds=5 if full_size else 1,
                             warmup_rounds=2 if full_size else 0)
    assert torch.isfinite(torch.tensor(float(out["total"])))
    benchmark.extra_info.update(segmenter=segmenter, crop=crop, batch=batch, corocl_active=out["corocl_active"])
    record(f"rpl/{precision}", benchmark)
