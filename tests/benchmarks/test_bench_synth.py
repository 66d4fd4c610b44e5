"""Synthetic benchmark generation: the default tree (seed 0) in <= 60 s on 2 cores (was a timed
assert in tests/test_synth.py). The smoke run generates a tiny tree."""
from __future__ import annotations

from oodbench.datasets.synth import generate


def test_generate_default_benchmark(benchmark, record, full_size, fresh_dir):
    kwargs = {} if full_size else dict(n_train=4, n_val=2, n_coco=4, n_per_split=1)
    counter = iter(range(10**6))

    def setup():
        return (fresh_dir(f"synth{next(counter)}"),), {}

    root = benchmark.pedantic(lambda out: generate(out, seed=0, **kwargs), setup=setup, rounds=1)
    assert (root / "oodbench_manifest.json").is_file()
    record("synth/generate", benchmark)
