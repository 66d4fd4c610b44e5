"""The benchmark scripts under ``benchmarks/`` still run (tiny CPU settings; the numbers themselves
are recorded in ``benchmarks/README.md``, never asserted here)."""
from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_bench_rpl_train_runs_a_corocl_step_and_reports(tmp_path, capsys, script):
    bench = script("benchmarks/bench_rpl_train.py")
    out = tmp_path / "rows.json"
    assert bench.main(["--device", "cpu", "--segmenter", "deeplabv3plus_small", "--crop", "64", "--batch", "2",
                       "--warmup", "0", "--iters", "2", "--precisions", "fp32,bf16", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [r["precision"] for r in rows] == ["fp32", "bf16 autocast"]  # bf16: the trainer's CPU autocast
    for r in rows:
        assert r["s_per_iter"] > 0 and r["peak_mib"] > 0 and r["corocl_steps"] == 2
    text = capsys.readouterr().out
    assert "| fp32 |" in text and "| bf16 autocast |" in text and "deeplabv3plus_small, 64x64, batch 2" in text


def test_bench_evaluate_writes_the_split_and_reports_the_ratio(tmp_path, capsys, script):
    bench = script("benchmarks/bench_evaluate.py")
    out = tmp_path / "row.json"
    assert bench.main(["--frames", "2", "--repeats", "1", "--root", str(tmp_path / "data"), "--json", str(out)]) == 0
    row = json.loads(out.read_text())
    assert row["frames"] == 2 and row["ratio_wall"] > 0 and row["evaluate_imported_torch"] is False
    assert 0 < row["metrics"]["siou"] <= 1 and 0 < row["metrics"]["auprc"] <= 1
    assert "| **ratio** |" in capsys.readouterr().out


def test_bench_bootstrap_reports_every_step(tmp_path, capsys, script):
    bench = script("benchmarks/bench_bootstrap.py")
    out = tmp_path / "row.json"
    assert bench.main(["--frames", "20", "--real-frames", "2", "--height", "32", "--width", "64",
                       "--replicates", "20", "--open-set-frames", "30", "--open-set-size", "36", "64",
                       "--json", str(out)]) == 0
    row = json.loads(out.read_text())
    assert row["frames"] == 20 and set(row["steps"]) >= {"smiyc: 20 replicates", "collector f16: 20 replicates"}
    assert row["open_set"]["frames"] == 30 and row["open_set"]["bootstrap"]["s"] > 0
    lo, hi = row["open_set"]["ci"]["open_miou"]
    assert 0 < lo <= hi < 1
    assert "open-set + closed-set mIoU: 20 replicates over 30 frames" in capsys.readouterr().out
