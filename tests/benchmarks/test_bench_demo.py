"""``oodbench demo`` rerun with every stage cached: <= 60 s (was a timed assert in
tests/test_demo.py, which now checks exactly what is reused). Slow either way: the first run
(setup, not timed) trains both models; the smoke run shrinks every stage to a few iterations."""
from __future__ import annotations

import pytest


@pytest.mark.slow
def test_demo_cached_rerun(benchmark, record, full_size, tmp_path):
    from oodbench.demo import DemoConfig, run_demo

    cfg = dict(out=tmp_path / "demo", seed=0, threads=2, progress=False)
    if not full_size:
        cfg.update(seg_iters=2, rpl_iters=2, split_sizes={})
    run_demo(DemoConfig(**cfg), log=lambda msg: None)
    summary = benchmark.pedantic(lambda: run_demo(DemoConfig(**cfg), log=lambda msg: None), rounds=1)
    assert set(summary["stage_times_s"]) == {"runs", "report"}
    record("demo/cached rerun", benchmark)
