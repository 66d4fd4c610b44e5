"""Evaluation throughput: ``oodbench run`` end to end vs the segmenter forward alone, per frame
(``benchmarks/README.md`` "Evaluation throughput"; target on GPU: run / forward >= 0.9). Frames
are the synthetic FS L&F frames upscaled to 1024x2048 (8 of them); the smoke run keeps 2 frames at
their generated size. Runs on CUDA when available, else on CPU (where loader workers and the HDF5
thread share the cores with the forward, so the ratio is a lower bound)."""
from __future__ import annotations

import pytest
import torch

SEGMENTER = "deeplabv3plus_small"


@pytest.fixture(scope="module")
def setting(full_size, tiny_root, tmp_path_factory, script):
    bench = script("benchmarks/bench_run.py")
    root = tmp_path_factory.mktemp("bench-run") / "data"
    frames, size = (8, (1024, 2048)) if full_size else (2, (128, 256))
    bench.make_large_variant(tiny_root, root, frames, size=size)
    return root, frames, size, "cuda" if torch.cuda.is_available() else "cpu"


@pytest.mark.benchmark(group="run")
def test_forward_only(benchmark, record, setting):
    from oodbench import segmenters

    _, _, size, device = setting
    model = segmenters.build(SEGMENTER).eval().to(device)
    x = torch.randn(1, 3, *size, device=device, generator=torch.Generator(device).manual_seed(0))

    def forward():
        with torch.inference_mode():
            out = model(x).argmax(1)
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    out = benchmark.pedantic(forward, rounds=3, warmup_rounds=1)
    assert out.shape == (1, *size)
    record("run/forward per frame", benchmark)


@pytest.mark.benchmark(group="run")
def test_run_end_to_end(benchmark, record, setting, fresh_dir):
    from oodbench.datasets import get_split
    from oodbench.methods import build
    from oodbench.runner import RunConfig, run_method

    root, frames, _, device = setting
    split = get_split("fishyscapes-laf-val", root)
    method = build("energy", segmenter=SEGMENTER)
    counter = iter(range(10**6))

    def setup():
        work = fresh_dir(f"run{next(counter)}")
        return (RunConfig(out=work / "out", results_dir=work / "results", device=device, batch_size=1, allow_untrained=True,
                          num_workers=2, progress=False),), {}

    results = benchmark.pedantic(lambda cfg: run_method("energy", [split], cfg, method=method), setup=setup,
                                 rounds=2 if frames > 2 else 1)
    assert [r.num_frames for r in results] == [frames]
    if not benchmark.disabled:
        record("run/end to end per frame", value=benchmark.stats.stats.median / frames)
