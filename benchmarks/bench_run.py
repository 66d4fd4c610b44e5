"""Evaluation throughput at 1024x2048: ``oodbench run`` end to end vs the model forward alone.

Generates a larger variant of the synthetic benchmark (frames of 1024x2048, the Fishyscapes /
Cityscapes size), then measures in one process:

* ``forward``: the segmenter's forward pass on a resident batch (no data loading, no storing);
* ``run``: :func:`oodbench.runner.run_method` on ``fishyscapes-laf-val`` -- decode, normalise,
  forward, score, float32 HDF5 writes and the exact evaluation, i.e. what ``oodbench run`` does.

The ratio run/forward says how well loading, storing and metric accumulation overlap inference
(target on GPU: >= 0.9). Usage::

    python benchmarks/bench_run.py --frames 8 --device cpu
    python benchmarks/bench_run.py --frames 32 --device cuda --amp bf16 --batch-size 4
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch


def make_large_variant(small: Path, root: Path, frames: int, size: tuple[int, int] = (1024, 2048)) -> None:
    """FS L&F frames of the synthetic benchmark upscaled to ``size`` = 1024x2048 (images bilinear, labels
    nearest), in the preprocessed ``fishyscapes/LostAndFound/{original,labels}`` layout, with a
    synthetic manifest giving the frame count. (Painting 2-megapixel scenes from scratch for every
    split would take minutes; upscaling keeps the content and the cost of a real frame.) ``small`` is
    generated unless it already holds a synthetic benchmark."""
    import numpy as np
    from PIL import Image

    from oodbench.atomic import atomic_write_json
    from oodbench.datasets import get_split
    from oodbench.datasets.synth import generate

    if not (small / "oodbench_manifest.json").is_file():
        generate(small, seed=0)
    split = get_split("fishyscapes-laf-val", small)
    ids = split.frame_ids()
    (root / "fishyscapes" / "LostAndFound" / "original").mkdir(parents=True)
    (root / "fishyscapes" / "LostAndFound" / "labels").mkdir(parents=True)
    for i in range(frames):
        frame = split.load(ids[i % len(ids)])
        name = f"{i:04d}_{frame.frame_id}"
        Image.fromarray(frame.image).resize(size[::-1], Image.BILINEAR).save(
            root / "fishyscapes" / "LostAndFound" / "original" / f"{name}.png", compress_level=1)
        Image.fromarray(frame.label).resize(size[::-1], Image.NEAREST).save(
            root / "fishyscapes" / "LostAndFound" / "labels" / f"{name}.png", compress_level=1)
    atomic_write_json(root / "oodbench_manifest.json", {
        "synthetic": True, "generator": "benchmarks/bench_run.py (upscaled synthetic FS L&F)",
        "counts": {"fishyscapes-laf-val": frames}})
    assert np.asarray(Image.open(next((root / "fishyscapes" / "LostAndFound" / "labels").iterdir()))).shape == size


def forward_fps(segmenter: str, device: str, batch: int, iters: int, amp: str | None) -> float:
    from oodbench import segmenters

    model = segmenters.build(segmenter).eval().to(device)
    x = torch.randn(batch, 3, 1024, 2048, device=device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp or "")
    ctx = torch.autocast(device_type=torch.device(device).type, dtype=dtype or torch.bfloat16,
                         enabled=dtype is not None and device.startswith("cuda"))
    with torch.inference_mode(), ctx:
        model(x)  # warm-up
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(iters):
            out = model(x)
            out.argmax(1)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    return batch * iters / (time.perf_counter() - t0)


def run_fps(root: Path, segmenter: str, device: str, batch: int, workers: int, amp: str | None,
            work: Path) -> dict:
    from oodbench.datasets import get_split
    from oodbench.methods import build
    from oodbench.runner import RunConfig, predict_split, run_method

    split = get_split("fishyscapes-laf-val", root)
    method = build("energy", segmenter=segmenter)
    cfg = RunConfig(out=work / "warm", results_dir=work / "r0", device=device, batch_size=batch,
                    num_workers=workers, amp=amp, progress=False)
    predict_split(method, "energy", split, cfg, frame_ids=split.frame_ids()[:batch])  # warm-up
    cfg = RunConfig(out=work / "out", results_dir=work / "r", device=device, batch_size=batch,
                    num_workers=workers, amp=amp, progress=False)
    t0 = time.perf_counter()
    run_method("energy", [split], cfg, method=method)
    total = time.perf_counter() - t0
    n = len(split.frame_ids())
    return {"frames": n, "seconds": round(total, 2), "fps": n / total}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--segmenter", default="deeplabv3plus_small")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--num-workers", type=int, default=2)
    ap.add_argument("--amp", choices=["bf16", "fp16"], default=None)
    ap.add_argument("--data", default=None, help="reuse a generated 1024x2048 synthetic root")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="oodbench-bench-run-"))
    try:
        root = Path(args.data) if args.data else work / "data"
        t0 = time.perf_counter()
        if not args.data:
            make_large_variant(work / "small", root, args.frames)
        gen_s = time.perf_counter() - t0
        fwd = forward_fps(args.segmenter, args.device, args.batch_size, max(2, args.frames // args.batch_size),
                          args.amp)
        run = run_fps(root, args.segmenter, args.device, args.batch_size, args.num_workers, args.amp, work)
        report = {
            "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
            "threads": torch.get_num_threads(), "segmenter": args.segmenter, "batch_size": args.batch_size,
            "num_workers": args.num_workers, "amp": args.amp, "resolution": "1024x2048",
            "generate_s": round(gen_s, 1), "forward_fps": round(fwd, 3), "run": run,
            "run_over_forward": round(run["fps"] / fwd, 3),
        }
        print(json.dumps(report, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
