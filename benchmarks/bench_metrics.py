#!/usr/bin/env python3
"""Throughput and peak memory of the pixel metrics (AP + AUROC + FPR95) vs. baselines.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_metrics.py --pixels 20e6 100e6 [--skip-sklearn-above 50e6]

For every size the parent process generates one synthetic data set (labels
2 % anomaly / 10 % void / 88 % inlier; scores ``sigmoid(z)``, ``z ~ N(0, 1)`` for inlier and void,
``N(1.8125, 1)`` for anomalies, float32, plus the same scores rounded to float16), stores it in a
temporary folder and runs each method in a fresh subprocess (one measurement per process):

* ``memory pass``: float64 sum of the scores + sum of the labels (reads the input once);
* ``bincount 17-bit``: the obvious exact float16 method -- one ``np.bincount`` over
  ``bits + 65536 * (label == 1)`` of the non-void pixels, then the curve from the histogram;
* ``sklearn``: ``average_precision_score`` + ``roc_auc_score`` + ``roc_curve`` on the non-void
  float32 pixels;
* ``oodbench f16`` / ``oodbench f32``: :class:`oodbench.metrics.ExactPixelAccumulator` fed one
  2048x1024 frame per ``update`` and ``compute()``.

Reported: wall seconds, pixels/s (all pixels, void included), extra peak bytes per pixel =
(VmHWM - VmRSS before the timed region) / N, with VmHWM reset through ``/proc/self/clear_refs``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FRAME = 2048 * 1024
METHODS = ("memory pass", "bincount 17-bit", "sklearn", "oodbench f16", "oodbench f32")


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def make_data(n: int, folder: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.choice(np.array([0, 1, 255], np.uint8), size=n, p=[0.88, 0.02, 0.10])
    z = rng.standard_normal(n, dtype=np.float32)
    z[labels == 1] += np.float32(1.8125)
    scores = (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
    np.save(folder / "labels.npy", labels)
    np.save(folder / "scores32.npy", scores)
    np.save(folder / "scores16.npy", scores.astype(np.float16))


def _curve_from_f16_hist(h: np.ndarray) -> tuple[float, float, float]:
    from oodbench.metrics._curves import CurveSummary, f16_code_hist_to_table, F16_VALUES_ASC
    t = f16_code_hist_to_table(h)                 # (2, 63487) in ascending value order
    pos, neg = t[1], t[0]
    nz = np.flatnonzero(pos)
    ge = np.cumsum(neg[::-1])[::-1]
    gt = np.concatenate([ge[1:], [0]])
    s = CurveSummary(F16_VALUES_ASC[nz], pos[nz], ge[nz], gt[nz], int(pos.sum()), int(neg.sum()))
    return s.average_precision(), s.auroc(), s.fpr_at_tpr("first_tpr_ge")[0]


def run_method(method: str, folder: Path) -> dict:
    labels = np.load(folder / "labels.npy")
    s32 = np.load(folder / "scores32.npy") if method in ("memory pass", "sklearn", "oodbench f32") else None
    s16 = np.load(folder / "scores16.npy") if method in ("bincount 17-bit", "oodbench f16") else None
    n = labels.size
    if method == "sklearn":
        import sklearn.metrics  # noqa: F401  (imported before the timed region)
    else:
        import oodbench.metrics  # noqa: F401
    rss0 = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    t0 = time.perf_counter()
    vals = compute(method, labels, s16, s32)
    wall = time.perf_counter() - t0
    peak = _status("VmHWM")
    return {"method": method, "pixels": n, "wall_s": wall, "pixels_per_s": n / wall,
            "extra_peak_bytes": peak - rss0, "extra_peak_B_per_px": (peak - rss0) / n,
            "ap": vals[0], "auroc": vals[1], "fpr95": vals[2]}


def compute(method: str, labels: np.ndarray, s16: np.ndarray | None, s32: np.ndarray | None) -> tuple:
    """AP, AUROC, FPR95 of one method (the timed region; also used by tests/benchmarks)."""
    n = labels.size
    if method == "sklearn":
        from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
    else:
        import oodbench.metrics as M
    if method == "memory pass":
        _ = float(s32.sum(dtype=np.float64)) + float(labels.sum(dtype=np.uint64))
        vals = (float("nan"),) * 3
    elif method == "bincount 17-bit":
        valid = labels != 255
        key = s16.view(np.uint16)[valid].astype(np.intp) + ((labels[valid] == 1).astype(np.intp) << 16)
        h = np.bincount(key, minlength=1 << 17).reshape(2, 65536)
        vals = _curve_from_f16_hist(h)
    elif method == "sklearn":
        valid = labels != 255
        y = labels[valid] == 1
        x = s32[valid]
        ap = average_precision_score(y, x)
        auroc = roc_auc_score(y, x)
        fpr, tpr, _ = roc_curve(y, x, drop_intermediate=False)
        vals = (ap, auroc, float(fpr[np.searchsorted(tpr, 0.95)]))
    else:
        s = s16 if method == "oodbench f16" else s32
        acc = M.ExactPixelAccumulator()
        for start in range(0, n, FRAME):
            acc.update(s[start:start + FRAME], labels[start:start + FRAME])
        r = acc.compute()
        vals = (r["auprc"], r["auroc"], r["fpr95"])
    return vals


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pixels", type=float, nargs="+", default=[20e6, 100e6])
    ap.add_argument("--skip-sklearn-above", type=float, default=None,
                    help="skip sklearn for sizes above this many pixels (it takes ~90 s at 100M)")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--json", type=Path, default=None, help="also write the records here")
    ap.add_argument("--worker", nargs=2, metavar=("METHOD", "FOLDER"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(run_method(args.worker[0], Path(args.worker[1]))))
        return 0
    records = []
    for n in (int(p) for p in args.pixels):
        with tempfile.TemporaryDirectory(prefix="oodbench-bench-") as tmp:
            make_data(n, Path(tmp))
            for method in args.methods:
                if method == "sklearn" and args.skip_sklearn_above and n > args.skip_sklearn_above:
                    continue
                env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
                out = subprocess.run([sys.executable, __file__, "--worker", method, tmp],
                                     capture_output=True, text=True, env=env, check=True)
                rec = json.loads(out.stdout.strip().splitlines()[-1])
                records.append(rec)
                print(f"{n / 1e6:6.0f}M  {method:16s} {rec['wall_s']:8.3f} s  "
                      f"{rec['pixels_per_s'] / 1e6:8.1f} M px/s  {rec['extra_peak_B_per_px']:6.2f} B/px  "
                      f"({rec['extra_peak_bytes'] / 2**20:7.1f} MiB)  AP {rec['ap']:.6f}  "
                      f"AUROC {rec['auroc']:.6f}  FPR95 {rec['fpr95']:.6f}", flush=True)
    if args.json:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from oodbench.atomic import atomic_write_json
        atomic_write_json(args.json, records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
