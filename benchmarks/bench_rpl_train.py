"""RPL+CoroCL training step: seconds per iteration and peak memory, fp32 vs bf16 autocast.

The issue's setting is the reference configuration: WRN38 DeepLabV3+, 700x700 crops, batch 8 per
GPU, CoroCL on (so every step forwards 8 city-mix + 8 COCO context crops). For each precision the
script builds :class:`oodbench.methods.rpl.train.RPLTrainer` (random segmenter weights: speed and
memory do not depend on their values), draws real batches through the outlier-exposure pipeline from
a small synthetic data root (the crop size, not the source size, sets the step's cost), and times
``train_step`` -- forward, the four losses, backward, Adam -- on resident batches, after warm-up:

* ``s/iter``: median wall time of one step (CUDA: synchronised before and after);
* ``peak``: ``torch.cuda.max_memory_allocated`` on CUDA, the process' peak RSS on CPU.

Data loading is excluded (it runs in DataLoader workers, overlapped with the step). The reference
code trains in fp32; oodbench uses bf16 autocast on CUDA by default (``--amp``). On CPU the bf16
row uses the trainer's opt-in CPU autocast (``--amp-cpu``): it checks the path, but is no speed
claim for CPUs without bf16 units. Usage::

    python benchmarks/bench_rpl_train.py --device cuda                 # WRN38, 700x700, batch 8
    python benchmarks/bench_rpl_train.py --device cpu --segmenter deeplabv3plus_small \\
        --crop 128 --batch 2 --iters 3 --warmup 1                      # smoke run on a laptop

Prints a markdown table and, with ``--json PATH``, writes the numbers.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch


def _peak_rss_mib() -> float:
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib / 1024.0


def prepare_data(root: Path) -> Path:
    """A small synthetic data root with Cityscapes-format train images and COCO outlier masks."""
    from oodbench.datasets.coco import prepare_coco_ood
    from oodbench.datasets.synth import generate

    generate(root, seed=0, n_train=40, n_val=8, n_coco=24, n_per_split=2)
    prepare_coco_ood(root / "coco", progress=False)
    return root


def make_step(data: Path, segmenter: str, device: str, amp: bool, crop: int, batch: int, work: Path):
    """``(step, sync, cfg, device)``: ``step(i)`` runs one RPL+CoroCL ``train_step`` on a resident batch
    (alternating two batches on which CoroCL runs, when 20 draws hold them) and waits for the device."""
    from oodbench import segmenters
    from oodbench.methods.rpl.model import RPLNet
    from oodbench.methods.rpl.losses import OOD_LABEL
    from oodbench.methods.rpl.train import RPLTrainConfig, RPLTrainer

    cfg = RPLTrainConfig(out_dir=str(work), data_root=str(data), segmenter=segmenter, crop_size=(crop, crop),
                         batch_size=batch, device=device, amp=amp, amp_cpu=amp, num_workers=0, progress=False,
                         val_splits="none", epochs=1, seed=0)
    net = RPLNet(segmenters.build(segmenter), projector=True)
    trainer = RPLTrainer(cfg, model=net)
    trainer.setup()
    dev = trainer.device
    # two batches on which CoroCL runs (>= corocl_min_images crops with a pasted object), as in
    # almost every step of the batch-8 reference setting; fall back to the first ones drawn
    first, batches = [], []
    for n_drawn, b in enumerate(trainer.make_batches(0, 0), 1):
        if len(first) < 2:
            first.append(b)
        if int((b[1] == OOD_LABEL).flatten(1).any(dim=1).sum()) >= cfg.corocl_min_images:
            batches.append(tuple(t.to(dev) for t in b))
        if len(batches) == 2 or n_drawn == 20:
            break
    batches = batches or [tuple(t.to(dev) for t in b) for b in first]
    cuda = dev.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(dev)

    def step(i: int) -> dict:
        out = trainer.train_step(batches[i % len(batches)], i)
        sync()
        return out

    return step, sync, cfg, dev


def bench_one(data: Path, segmenter: str, device: str, amp: bool, crop: int, batch: int,
              warmup: int, iters: int, work: Path) -> dict:
    """Median s/iter and peak memory of ``iters`` RPL+CoroCL training steps (after ``warmup``)."""
    step, sync, cfg, dev = make_step(data, segmenter, device, amp, crop, batch, work)
    cuda = dev.type == "cuda"
    for i in range(warmup):
        step(i)
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    times, corocl_steps = [], 0
    for i in range(iters):
        sync()
        t0 = time.perf_counter()
        out = step(warmup + i)
        times.append(time.perf_counter() - t0)
        corocl_steps += int(out["corocl_active"])
    peak = torch.cuda.max_memory_allocated(dev) / 2**20 if cuda else _peak_rss_mib()
    return {"segmenter": segmenter, "device": str(dev), "precision": "bf16 autocast" if amp else "fp32",
            "crop": crop, "batch": batch, "iters": iters, "s_per_iter": statistics.median(times),
            "s_per_iter_min": min(times), "peak_mib": peak, "peak_kind": "cuda allocated" if cuda else "process RSS",
            "corocl_steps": corocl_steps}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--segmenter", default="deeplabv3plus_wrn38")
    p.add_argument("--crop", type=int, default=700)
    p.add_argument("--batch", type=int, default=8, help="city-mix images per step (CoroCL adds as many COCO crops)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--precisions", default=None,
                   help="comma list of fp32,bf16 (default: both on CUDA, fp32 on CPU; bf16 on CPU uses --amp-cpu)")
    p.add_argument("--data-root", default=None, help="reuse a data root made by an earlier run (or --prepare-data)")
    p.add_argument("--prepare-data", default=None, metavar="DIR", help="only write the synthetic data root to DIR")
    p.add_argument("--json", default=None, help="also write the numbers here")
    args = p.parse_args(argv)
    if args.prepare_data:
        prepare_data(Path(args.prepare_data))
        print(f"data root: {args.prepare_data}")
        return 0
    cuda = args.device.startswith("cuda")
    precisions = (args.precisions or ("fp32,bf16" if cuda else "fp32")).split(",")
    if not set(precisions) <= {"fp32", "bf16"}:
        p.error(f"--precisions: {args.precisions!r} is not a comma list of fp32,bf16")
    torch.backends.cudnn.benchmark = cuda
    with tempfile.TemporaryDirectory(prefix="bench-rpl-") as tmp:
        data = Path(args.data_root) if args.data_root else prepare_data(Path(tmp) / "data")
        rows = [bench_one(data, args.segmenter, args.device, prec == "bf16", args.crop, args.batch,
                          args.warmup, args.iters, Path(tmp) / f"work-{prec}") for prec in precisions]
    fp32 = next((r["s_per_iter"] for r in rows if r["precision"] == "fp32"), None)
    print(f"RPL+CoroCL training step, {args.segmenter}, {args.crop}x{args.crop}, batch {args.batch} "
          f"(+{args.batch} COCO context crops), device {rows[0]['device']}, torch {torch.__version__}\n")
    print("| precision | s/iter (median) | s/iter (min) | speed-up vs fp32 | peak memory (MiB) | CoroCL steps |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        speed = f"{fp32 / r['s_per_iter']:.2f}x" if fp32 else "-"
        print(f"| {r['precision']} | {r['s_per_iter']:.3f} | {r['s_per_iter_min']:.3f} | {speed} | "
              f"{r['peak_mib']:.0f} ({r['peak_kind']}) | {r['corocl_steps']}/{r['iters']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
