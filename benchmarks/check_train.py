"""End-to-end RPL training checks for the device check (``gpu_check.py``), also usable alone.

``resume``: ``oodbench train --method rpl`` on the synthetic benchmark, started as the user would
(the console entry point in a child process), stopped with ``--stop-after`` half-way, then run
again with the same flags so that it resumes from ``last.pth``; checks the log has every iteration
once and the final checkpoint is at the last one, and reports s/iter (median ``step_s``), the two
legs' wall times, the checkpoint size and the final validation row.

``group``: the same trainer in-process with a one-rank process group
(``init_distributed(always_group=True)``): NCCL on CUDA, gloo on CPU; checks the backend, that
the residual block's BN became SyncBatchNorm (NCCL) / DistBatchNorm2d (gloo) and that DDP wraps the
model, and reports s/iter. Usage::

    python benchmarks/check_train.py resume --data-root DATA --device cuda --json r.json
    python benchmarks/check_train.py group --data-root DATA --device cuda --json g.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def closed_set_checkpoint(segmenter: str, path: Path) -> Path:
    """Random closed-set weights in the layout ``--checkpoint`` accepts (speed does not depend on them)."""
    import torch

    from oodbench import segmenters

    if not path.is_file():
        torch.manual_seed(0)
        tmp = path.with_name(path.name + ".tmp")
        torch.save({"model_state": segmenters.build(segmenter).state_dict()}, tmp)
        os.replace(tmp, path)  # a step stopped mid-write leaves no torn file for the next one
    return path


def _train_flags(args, out: Path, ckpt: Path) -> list[str]:
    return ["--segmenter", args.segmenter, "--checkpoint", str(ckpt), "--data-root", str(args.data_root),
            "--out-dir", str(out), "--device", args.device, "--crop-size", str(args.crop), str(args.crop),
            "--batch-size", str(args.batch), "--max-iters", str(args.iters), "--ckpt-every", str(args.iters // 2),
            "--max-iter-ckpts", "1", "--num-workers", str(args.workers), "--val-splits", "fishyscapes-laf-val",
            "--val-max-frames", "2", "--no-progress", "--seed", "1"] + (["--amp-cpu"] if args.amp_cpu else [])


def check_resume(args) -> dict:
    import torch

    from oodbench.training.logs import read_csv_log

    out = args.work / "resume"
    ckpt = closed_set_checkpoint(args.segmenter, args.checkpoint or args.work / "closed_set.pth")
    cmd = [sys.executable, "-m", "oodbench", "train", "--method", "rpl", *_train_flags(args, out, ckpt)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    legs = []
    for extra in (["--stop-after", str(args.iters // 2)], []):
        t0 = time.perf_counter()
        # cwd outside the checkout: `python -m` puts the cwd first on sys.path, where the source folder
        # oodbench/ would shadow the installed package
        proc = subprocess.run(cmd + extra, capture_output=True, text=True, env=env, cwd=args.work)
        legs.append(round(time.perf_counter() - t0, 1))
        sys.stdout.write(proc.stdout[-2000:])
        sys.stderr.write(proc.stderr[-4000:])
        if proc.returncode != 0:
            raise SystemExit(f"oodbench train failed ({proc.returncode}) in leg {len(legs)}")
    rows = read_csv_log(out / "train.csv")
    iters = [int(r["iteration"]) for r in rows]
    if iters != list(range(1, args.iters + 1)):
        raise SystemExit(f"train.csv iterations after resume are {iters}, expected 1..{args.iters}")
    final = torch.load(out / "last.pth", map_location="cpu", weights_only=True)
    if int(final["iteration"]) != args.iters:
        raise SystemExit(f"last.pth is at iteration {final['iteration']}, expected {args.iters}")
    if any(v.is_floating_point() and v.dtype != torch.float32 for v in final["model"].values()):
        raise SystemExit("last.pth holds non-float32 weights")
    val = read_csv_log(out / "val.csv")
    steps = [float(r["step_s"]) for r in rows]
    return {"segmenter": args.segmenter, "device": args.device, "crop": args.crop, "batch": args.batch,
            "iterations": args.iters, "resumed_at": args.iters // 2, "amp": "bf16" if args.device.startswith("cuda")
            or args.amp_cpu else "off", "s_per_iter_median": statistics.median(steps),
            "s_per_iter_after_resume": statistics.median(steps[args.iters // 2 + 1:] or steps),
            "leg_wall_s": legs, "checkpoint_mib": round((out / "last.pth").stat().st_size / 2**20, 1),
            "corocl_steps": sum(r["corocl_active"] == "1" for r in rows), "final_loss": float(rows[-1]["total"]),
            "val": {k: float(v) for k, v in (val[-1] if val else {}).items() if k != "iteration"}}


def check_group(args) -> dict:
    import torch

    from oodbench.methods.rpl.train import RPLTrainConfig, RPLTrainer
    from oodbench.training.distributed import backend_for, cleanup_distributed, init_distributed
    from oodbench.training.syncbn import DistBatchNorm2d

    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        os.environ.pop(name, None)
    ckpt = closed_set_checkpoint(args.segmenter, args.checkpoint or args.work / "closed_set.pth")
    ctx = init_distributed(args.device, timeout_s=120, always_group=True)
    try:
        cfg = RPLTrainConfig(out_dir=str(args.work / "group"), segmenter=args.segmenter, checkpoint=str(ckpt),
                             data_root=str(args.data_root), device=args.device, crop_size=(args.crop, args.crop),
                             batch_size=args.batch, max_iters=args.iters, ckpt_every=args.iters,
                             keep_iter_ckpts=False, num_workers=args.workers, val_splits="none", progress=False,
                             amp_cpu=args.amp_cpu)
        trainer = RPLTrainer(cfg, ctx=ctx)
        result = trainer.fit()
        bn = torch.nn.SyncBatchNorm if ctx.device.type == "cuda" else DistBatchNorm2d
        n_bn = sum(isinstance(m, bn) for m in trainer.model.branch1.residual_block.modules())
        problems = []
        if ctx.backend != backend_for(ctx.device) or torch.distributed.get_backend(ctx.group) != ctx.backend:
            problems.append(f"backend {ctx.backend} on {ctx.device}")
        if n_bn == 0:
            problems.append(f"no {bn.__name__} in the residual block")
        if not isinstance(trainer.ddp, torch.nn.parallel.DistributedDataParallel):
            problems.append("the model is not wrapped in DDP")
        if result.iteration != args.iters:
            problems.append(f"stopped at iteration {result.iteration}")
        if problems:
            raise SystemExit("one-rank process group: " + "; ".join(problems))
        from oodbench.training.logs import read_csv_log

        steps = [float(r["step_s"]) for r in read_csv_log(args.work / "group" / "train.csv")]
        return {"backend": ctx.backend, "world_size": ctx.world_size, "device": str(ctx.device),
                "global_bn": f"{bn.__name__} x{n_bn}", "ddp": True, "segmenter": args.segmenter,
                "crop": args.crop, "batch": args.batch, "iterations": result.iteration,
                "s_per_iter_median": statistics.median(steps[1:] or steps)}
    finally:
        cleanup_distributed(ctx)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("check", choices=["resume", "group"])
    p.add_argument("--data-root", type=Path, required=True, help="synthetic root (bench_rpl_train.py --prepare-data)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--segmenter", default="deeplabv3plus_wrn38")
    p.add_argument("--crop", type=int, default=700)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--amp-cpu", action="store_true", help="bf16 autocast on CPU too (the trainer's --amp-cpu)")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="closed-set weights to start from; written (random weights) if missing (default: in --work)")
    p.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.iters < 2:
        p.error("--iters must be >= 2 (the resume check stops half-way)")
    with tempfile.TemporaryDirectory(prefix="check-train-") as tmp:
        args.work = args.work or Path(tmp)
        args.work.mkdir(parents=True, exist_ok=True)
        report = (check_resume if args.check == "resume" else check_group)(args)
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
