#!/usr/bin/env python3
"""Cost of the frame bootstrap (oodbench.metrics.bootstrap) next to one evaluation pass.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_bootstrap.py [--frames 1000] [--real-frames 8]
        [--height 1024 --width 2048] [--replicates 1000] [--open-set-frames 1500] [--json out.json]

``--real-frames`` synthetic frames of ``height x width`` pixels are generated (the benchmark
data: 2 % anomaly, 10 % void, ``sigmoid(N(0, 1) + frame shift)`` scores, anomalies +1.8125, float32
and their float16 rounding) and fed to the accumulators, timing one ``update`` per frame:
``FrameCollector`` (the bootstrap state), ``ExactPixelAccumulator`` and ``SmiycPixelAccumulator``
(the evaluation pass).  The per-frame states are then replicated to ``--frames`` frames (the SMIYC
bin edges of each copy scaled by ``1 + 1e-7 * copy`` so that no two copies share thresholds, as
distinct real frames would not) -- the bootstrap cost depends on the per-frame state, never on
pixels -- and ``--replicates`` replicates are timed: binning + bootstrap for the collector, the
SMIYC pooled-curve bootstrap.  Peak memory is the ``tracemalloc`` peak of each timed step (numpy
allocations included).  The binning error is the collector's binned full-sample value minus the
exact accumulator's on the generated frames.

Open-set / closed-set mIoU (StreetHazards): ``--real-frames`` frames of ``--open-set-size`` with 12
known classes, 3 % anomaly, 5 % ignore, a prediction right on 80 % of the known pixels; one
``OpenSetMIoU.update`` (pass 1) and one ``OpenSetFrameCounts.update`` (the bootstrap's pass-2
counts) per frame are timed, then the counts are replicated to ``--open-set-frames`` frames and
``--replicates`` replicates timed.
"""
from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from typing import Any, Callable

import numpy as np

from oodbench.metrics import (ExactPixelAccumulator, FrameCollector, OpenSetFrameCounts, OpenSetMIoU,
                              SmiycPixelAccumulator, bootstrap_ci)


def make_frame(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    lab = rng.choice(np.array([0, 1, 255], np.uint8), size=(h, w), p=[0.88, 0.02, 0.10])
    z = rng.standard_normal((h, w), dtype=np.float32) + np.float32(0.3 * rng.standard_normal())
    z[lab == 1] += np.float32(1.8125)
    return (1.0 / (1.0 + np.exp(-z))).astype(np.float32), lab


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, seconds, tracemalloc peak MiB) of one call."""
    tracemalloc.start()
    t = time.perf_counter()
    out = fn()
    sec = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return out, sec, peak


def replicate_collector(col: FrameCollector, frames: int) -> FrameCollector:
    big = FrameCollector(fpr_rule=col.fpr_rule, max_bins=col.max_bins, mantissa_bits=col.mantissa_bits)
    k = len(col.frame_ids)
    for i in range(frames):
        big.keys.append(col.keys[i % k])
        big.counts.append(col.counts[i % k])
        big.frame_ids.append(f"f{i}")
    big.n_void = col.n_void * frames // k
    big._num_updates = frames
    return big


def replicate_smiyc(acc: SmiycPixelAccumulator, frames: int) -> SmiycPixelAccumulator:
    big = SmiycPixelAccumulator()
    k = len(acc.thresholds)
    for i in range(frames):
        big.thresholds.append(acc.thresholds[i % k] * (1.0 + 1e-7 * (i // k)))
        big.tp.append(acc.tp[i % k])
        big.fp.append(acc.fp[i % k])
        big.frame_order.append(-1)
    big.n_pos, big.n_neg = acc.n_pos * frames // k, acc.n_neg * frames // k
    return big


def make_semantic_frame(rng: np.random.Generator, h: int, w: int, k: int = 12):
    """StreetHazards-like frame: GT ids 0..k-1, anomaly k (3 %), ignore 255 (5 %); a prediction
    that is right on 80 % of the known pixels; float16 scores higher on the anomaly."""
    gt = rng.integers(0, k, size=(h, w), dtype=np.uint8)
    u = rng.random((h, w))
    gt[u < 0.03] = k
    gt[(u >= 0.03) & (u < 0.08)] = 255
    pred = np.where(rng.random((h, w)) < 0.8, np.minimum(gt, k - 1), rng.integers(0, k, size=(h, w)))
    z = rng.standard_normal((h, w), dtype=np.float32) + np.float32(0.3 * rng.standard_normal())
    z[gt == k] += np.float32(1.8125)
    return (1.0 / (1.0 + np.exp(-z))).astype(np.float16), pred.astype(np.uint8), gt


def run_open_set(frames: int, real_frames: int, h: int, w: int, replicates: int, seed: int = 0) -> dict[str, Any]:
    """Open-set / closed-set mIoU: per-frame cost of the pass-1 accumulator and of the pass-2 counts
    (:class:`OpenSetFrameCounts`), then ``replicates`` replicates over ``frames`` frames."""
    rng = np.random.default_rng(seed)
    data = [make_semantic_frame(rng, h, w) for _ in range(real_frames)]
    groups = ["t5", "t6"]
    acc = OpenSetMIoU(num_known=12)
    t_acc = []
    for i, (s, p, g) in enumerate(data):
        t = time.perf_counter()
        acc.update(s, p, g, group=groups[i % 2])
        t_acc.append(time.perf_counter() - t)
    thresholds = acc.thresholds()
    counts = OpenSetFrameCounts(num_known=12, thresholds=thresholds)
    t_cnt = []
    for i, (s, p, g) in enumerate(data):
        t = time.perf_counter()
        counts.update(s, p, g, group=groups[i % 2], frame_id=f"f{i}")
        t_cnt.append(time.perf_counter() - t)
    big = OpenSetFrameCounts(num_known=12, thresholds=thresholds)
    for i in range(frames):
        j = i % real_frames
        big.frame_ids.append(f"f{i}")
        big.groups.append(counts.groups[j])
        big.open_counts.append(counts.open_counts[j])
        big.closed_counts.append(counts.closed_counts[j])
    big._num_updates = frames
    res, sec, peak = timed(lambda: bootstrap_ci(big, n=replicates, seed=0))
    return {"frames": frames, "pixels_per_frame": h * w,
            "per_frame_s": {"OpenSetMIoU.update f16": float(np.median(t_acc)),
                            "OpenSetFrameCounts.update f16": float(np.median(t_cnt))},
            "bootstrap": {"s": sec, "peak_mib": peak},
            "ci": {k: res.ci[k] for k in ("open_miou", "closed_miou")}}


def run(frames: int, real_frames: int, h: int, w: int, replicates: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    per_frame: dict[str, list[float]] = {}
    cols = {"f32": FrameCollector(), "f16": FrameCollector()}
    exact = {"f32": ExactPixelAccumulator(), "f16": ExactPixelAccumulator()}
    smiyc = SmiycPixelAccumulator()
    for i in range(real_frames):
        s32, lab = make_frame(rng, h, w)
        s16 = s32.astype(np.float16)
        for tag, s in (("f32", s32), ("f16", s16)):
            for name, acc in ((f"FrameCollector.update {tag}", cols[tag]),
                              (f"ExactPixelAccumulator.update {tag}", exact[tag])):
                t = time.perf_counter()
                acc.update(s, lab, frame_id=f"f{i}")
                per_frame.setdefault(name, []).append(time.perf_counter() - t)
        t = time.perf_counter()
        smiyc.update(s16, lab)
        per_frame.setdefault("SmiycPixelAccumulator.update f16", []).append(time.perf_counter() - t)
    out: dict[str, Any] = {"frames": frames, "pixels_per_frame": h * w, "replicates": replicates,
                           "real_frames": real_frames,
                           "per_frame_s": {k: float(np.median(v)) for k, v in per_frame.items()}}
    out["state_kib_per_frame"] = {
        tag: float(np.mean([k.nbytes + c.nbytes for k, c in zip(col.keys, col.counts)]) / 1024)
        for tag, col in cols.items()}
    out["binning_error"] = {}
    for tag in cols:
        got, ref = cols[tag].compute(), exact[tag].compute()
        out["binning_error"][tag] = {k: got[k] - ref[k] for k in ("auprc", "auroc", "fpr95")}
        out["binning_error"][tag]["num_bins"] = got["num_bins"]
    steps: dict[str, dict[str, float]] = {}
    for tag in cols:
        big = replicate_collector(cols[tag], frames)
        binned, sec, peak = timed(big.binned)
        steps[f"collector {tag}: bin {frames} frames"] = {"s": sec, "peak_mib": peak}
        res, sec, peak = timed(lambda b=binned: bootstrap_ci(b, n=replicates, seed=0))
        steps[f"collector {tag}: {replicates} replicates"] = {"s": sec, "peak_mib": peak}
        out[f"ci_{tag}"] = res.ci
    big_s = replicate_smiyc(smiyc, frames)
    res, sec, peak = timed(lambda: bootstrap_ci(big_s, n=replicates, seed=0))
    steps[f"smiyc: {replicates} replicates"] = {"s": sec, "peak_mib": peak}
    out["steps"] = steps
    pf = out["per_frame_s"]
    out["pass_estimate_s"] = {name: pf[name] * frames for name in pf}
    return out


def table(r: dict[str, Any]) -> str:
    lines = [f"{r['frames']} frames x {r['pixels_per_frame'] / 1e6:.1f} MP, {r['replicates']} replicates "
             f"(per-frame times: median over {r['real_frames']} generated frames)", "",
             "| step | s | peak MiB |", "|---|---|---|"]
    for name, s in r["per_frame_s"].items():
        lines.append(f"| {name} (one frame) | {s:.4f} | - |")
    for name, s in r["pass_estimate_s"].items():
        lines.append(f"| pass estimate: {name} x {r['frames']} | {s:.1f} | - |")
    for name, v in r["steps"].items():
        lines.append(f"| {name} | {v['s']:.2f} | {v['peak_mib']:.0f} |")
    if "open_set" in r:
        o = r["open_set"]
        for name, sec in o["per_frame_s"].items():
            lines.append(f"| {name} (one {o['pixels_per_frame'] / 1e6:.2f} MP frame) | {sec:.4f} | - |")
        lines.append(f"| open-set + closed-set mIoU: {r['replicates']} replicates over {o['frames']} frames | "
                     f"{o['bootstrap']['s']:.2f} | {o['bootstrap']['peak_mib']:.0f} |")
    lines.append("")
    for tag, e in r["binning_error"].items():
        lines.append(f"binning error {tag} ({int(e['num_bins'])} bins, state "
                     f"{r['state_kib_per_frame'][tag]:.0f} KiB/frame): " +
                     ", ".join(f"{k} {e[k]:+.1e}" for k in ("auprc", "auroc", "fpr95")))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--real-frames", type=int, default=8)
    ap.add_argument("--height", type=int, default=1024)
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--open-set-frames", type=int, default=1500,
                    help="frames of the open-set mIoU bootstrap (StreetHazards test: 1500; 0 = skip)")
    ap.add_argument("--open-set-size", type=int, nargs=2, default=(720, 1280), metavar=("H", "W"),
                    help="frame size of the open-set part (StreetHazards: 720 1280)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    r = run(a.frames, a.real_frames, a.height, a.width, a.replicates)
    if a.open_set_frames:
        r["open_set"] = run_open_set(a.open_set_frames, a.real_frames, *a.open_set_size, a.replicates)
    print(table(r))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(r, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
