"""Pixel metrics (AP + AUROC + FPR95) throughput and memory: ``benchmarks/README.md`` "Metrics".

Targets (conftest.TARGETS): the float16 path >= 2x the plain 17-bit bincount with constant memory
(<= 64 MiB), the float32 exact path >= 40x scikit-learn with <= 12 B/px. Measured on the data of
``benchmarks/bench_metrics.py`` (2 % anomaly, 10 % void), 20M pixels; the smoke run uses 2^18.
"""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

N_TARGET = 20_000_000
N_SMOKE = 1 << 18


@pytest.fixture(scope="module")
def data(full_size, tmp_path_factory, script):
    bench = script("benchmarks/bench_metrics.py")
    folder = tmp_path_factory.mktemp("metrics-data")
    bench.make_data(N_TARGET if full_size else N_SMOKE, folder)
    arrays = {k: np.load(folder / f"{k}.npy") for k in ("labels", "scores16", "scores32")}
    return bench, arrays


@pytest.mark.benchmark(group="metrics")
@pytest.mark.parametrize("method", ["bincount 17-bit", "oodbench f16", "oodbench f32", "sklearn"])
def test_pixel_metrics(benchmark, record, data, method):
    bench, a = data
    s16 = a["scores16"] if method in ("bincount 17-bit", "oodbench f16") else None
    s32 = a["scores32"] if s16 is None else None
    rounds = 1 if method == "sklearn" else 3
    ap, auroc, fpr95 = benchmark.pedantic(bench.compute, args=(method, a["labels"], s16, s32), rounds=rounds)
    assert 0.0 < ap < 1.0 and 0.5 < auroc < 1.0 and 0.0 < fpr95 < 1.0   # the sizes differ: no pinned value
    record(f"metrics/{method}", benchmark)
    if method.startswith("oodbench") and not benchmark.disabled:
        # extra memory of one more call, traced (numpy reports its buffers to tracemalloc); not timed
        tracemalloc.start()
        bench.compute(method, a["labels"], s16, s32)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        if method == "oodbench f16":
            record("metrics/oodbench f16 extra MiB", value=peak / 2**20)
        else:
            record("metrics/oodbench f32 extra B/px", value=peak / a["labels"].size)
        benchmark.extra_info["extra_peak_bytes"] = peak
