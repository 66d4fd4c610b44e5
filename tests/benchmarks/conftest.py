"""The speed targets of ``benchmarks/README.md`` as pytest-benchmark benchmarks.

Plain ``pytest`` (pyproject's addopts hold ``--benchmark-disable``) runs every benchmark once on a
small input: a smoke test that the measured code path works. To measure, enable them::

    OMP_NUM_THREADS=1 pytest tests/benchmarks --benchmark-enable            # CPU, target sizes
    OMP_NUM_THREADS=1 pytest tests/benchmarks --benchmark-enable -m "slow or not slow"   # + demo

Enabled, each benchmark switches to the size its target is stated for, and the run ends with a
table of every target beside the measured value. The targets are documented numbers, never
assertions: on the shared 2-core VM timings vary by about 2x (``benchmarks/README.md``), so a
timed assert would flake. CUDA-only targets are skipped without a GPU.
"""
from __future__ import annotations

import operator
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest


@dataclass(frozen=True)
class Target:
    """``what`` measured as ``value(results)`` should be ``op`` ``bound`` (``benchmarks/README.md``)."""

    what: str
    keys: tuple[str, ...]
    value: Callable[..., float]
    op: str
    bound: float


TARGETS = (
    Target("metrics 20M px: oodbench f16 speed-up over the 17-bit bincount (x)", ("metrics/bincount 17-bit", "metrics/oodbench f16"),
           lambda base, ours: base / ours, ">=", 2.0),
    Target("metrics 20M px: oodbench f32 speed-up over sklearn (x)", ("metrics/sklearn", "metrics/oodbench f32"),
           lambda base, ours: base / ours, ">=", 40.0),
    Target("metrics: oodbench f16 extra memory (MiB, constant in N; bound stated at 10M px)",
           ("metrics/oodbench f16 extra MiB",), lambda v: v, "<=", 64.0),
    Target("metrics 20M px: oodbench f32 extra memory (bytes per pixel)", ("metrics/oodbench f32 extra B/px",),
           lambda v: v, "<=", 12.0),
    Target("synth: default benchmark generation (s)", ("synth/generate",), lambda s: s, "<=", 60.0),
    Target("closed-set segmenter, 128x256 batch 8: 540 iterations at the median step (s)", ("training/step",),
           lambda s: 540 * s, "<=", 600.0),
    Target("oodbench run / forward-only throughput at 1024x2048 (target stated for a GPU)", ("run/forward per frame", "run/end to end per frame"),
           lambda fwd, run: fwd / run, ">=", 0.9),
    Target("RPL+CoroCL train step, WRN38 700x700 batch 8: bf16 speed-up over fp32 (x; CUDA only)", ("rpl/fp32", "rpl/bf16"),
           lambda fp32, bf16: fp32 / bf16, ">=", 2.0),
    Target("demo: second run with every stage cached (s)", ("demo/cached rerun",), lambda s: s, "<=", 60.0),
)

_MEASURED: dict[str, float] = {}


def benchmarks_enabled(config: pytest.Config) -> bool:
    """pytest-benchmark's own rule: ``--benchmark-disable`` unless ``--benchmark-enable``."""
    return not (config.getoption("benchmark_disable") and not config.getoption("benchmark_enable"))


@pytest.fixture(scope="session")
def full_size(request) -> bool:
    """True when benchmarks are measured (target sizes), False for the one-shot smoke run."""
    return benchmarks_enabled(request.config)


@pytest.fixture
def record():
    """``record(key, benchmark)`` stores the benchmark's median seconds; ``record(key, value=x)`` a
    measured quantity (memory). Nothing is stored in smoke runs (no statistics)."""

    def _record(key: str, benchmark=None, *, value: float | None = None) -> None:
        if benchmark is not None:
            if benchmark.disabled or benchmark.stats is None:
                return
            value = benchmark.stats.stats.median
        _MEASURED[key] = float(value)

    return _record


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """A small synthetic benchmark for the smoke runs (about 7 s on the shared VM)."""
    from oodbench.datasets.synth import generate

    root = tmp_path_factory.mktemp("bench-tiny") / "data"
    generate(root, seed=0, n_train=4, n_val=2, n_coco=4, n_per_split=1)
    return root


@pytest.fixture
def fresh_dir(tmp_path):
    """``fresh_dir(name)``: an empty folder (removed first), for benchmark rounds that write."""

    def _fresh(name: str) -> Path:
        path = tmp_path / name
        shutil.rmtree(path, ignore_errors=True)
        return path

    return _fresh


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not _MEASURED:
        return
    ops = {">=": operator.ge, "<=": operator.le}
    terminalreporter.section("speed targets (benchmarks/README.md; measured, not asserted)")
    for t in TARGETS:
        if all(k in _MEASURED for k in t.keys):
            v = t.value(*(_MEASURED[k] for k in t.keys))
            status = "met" if ops[t.op](v, t.bound) else "NOT met"
            terminalreporter.write_line(f"{t.what}: {v:.3g} (target {t.op} {t.bound:g}) {status}")
    for key, v in sorted(_MEASURED.items()):
        terminalreporter.write_line(f"  {key} = {v:.4g}")
