"""The benchmark scripts under ``benchmarks/`` still run (tiny CPU settings; the numbers themselves
are recorded in ``benchmarks/README.md``, never asserted here)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_bench_rpl_train_runs_a_corocl_step_and_reports(tmp_path, capsys):
    bench = _load("bench_rpl_train")
    out = tmp_path / "rows.json"
    assert bench.main(["--device", "cpu", "--segmenter", "deeplabv3plus_small", "--crop", "64", "--batch", "2",
                       "--warmup", "0", "--iters", "2", "--precisions", "fp32,bf16", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [r["precision"] for r in rows] == ["fp32"]  # bf16 autocast is CUDA-only: one honest row on CPU
    assert rows[0]["s_per_iter"] > 0 and rows[0]["peak_mib"] > 0 and rows[0]["corocl_steps"] == 2
    text = capsys.readouterr().out
    assert "| fp32 |" in text and "deeplabv3plus_small, 64x64, batch 2" in text
