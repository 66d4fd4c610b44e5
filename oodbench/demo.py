"""``oodbench demo``: the whole system on the built-in synthetic benchmark, on a CPU, in minutes.

Stages (each cached under ``--out``; a rerun reuses what is done and is nearly instant):

1. ``data``      -- ``oodbench synth``: the synthetic benchmark in the official layouts;
2. ``segmenter`` -- train the small closed-set DeepLabV3+ on its Cityscapes-format training set;
3. ``coco``      -- ``oodbench prepare coco-ood`` on its COCO-format outlier source;
4. ``rpl``       -- train RPL+CoroCL on top of the segmenter with outlier exposure;
5. ``runs``      -- ``msp``, ``energy``, ``maxlogit``, ``entropy`` and ``rpl`` on every labelled
   synthetic split, through the same :func:`oodbench.runner.run_method` path ``oodbench run`` uses;
6. ``report``    -- the markdown leaderboard, PR/ROC curves per split and anomaly-map overlays.

Every output is marked as computed on synthetic data.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from .atomic import atomic_write_json, atomic_write_text

__all__ = ["DemoConfig", "run_demo", "add_demo_parser", "DEMO_METHODS"]

DEMO_METHODS = ("msp", "energy", "maxlogit", "entropy", "rpl")
SEGMENTER = "deeplabv3plus_small"


@dataclass
class DemoConfig:
    """Sizes chosen so a cold run fits in ~5 minutes on 2 CPU cores."""

    out: Path = Path("demo-out")
    seed: int = 0
    device: str = "cpu"
    progress: bool = True
    #: torch CPU threads; pinned so the printed numbers do not depend on the core count
    threads: int = 2
    #: frame counts of the synthetic validation splits: the released ones (AnomalyTrack 10,
    #: ObstacleTrack 30, FS Static 30); with 8 frames one low-contrast object could decide a pooled FPR95
    split_sizes: dict[str, int] = field(default_factory=lambda: dict(_official_sizes()))
    seg_iters: int = 300
    seg_batch: int = 8
    seg_crop: tuple[int, int] = (128, 256)
    seg_lr: float = 2e-3
    rpl_iters: int = 400
    rpl_batch: int = 8
    rpl_crop: tuple[int, int] = (128, 128)
    rpl_lr: float = 1e-3
    #: objects of the synthetic COCO (>= 480 px) scaled for 128 px crops (the paper's factors
    #: assume 640 px COCO images in 700 px crops)
    rpl_paste_scales: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.25)
    stage_times: dict[str, float] = field(default_factory=dict)

    def stage_key(self, stage: str) -> dict[str, Any]:
        """What a stage's output depends on (its own settings and those of the stages before it)."""
        from oodbench.datasets.synth import SYNTH_VERSION

        data = ("seed", "split_sizes")
        segmenter = data + ("seg_iters", "seg_batch", "seg_crop", "seg_lr")
        keep = {
            "data": data,
            "segmenter": segmenter,
            "coco": data,
            "rpl": segmenter + ("rpl_iters", "rpl_batch", "rpl_crop", "rpl_lr", "rpl_paste_scales"),
        }[stage]
        d = asdict(self)
        key = {"synth_version": SYNTH_VERSION, **{k: d[k] for k in keep}}
        return json.loads(json.dumps(key))  # tuples -> lists, as stored


def _official_sizes() -> dict[str, int]:
    from oodbench.datasets.synth import OFFICIAL_VALIDATION_SIZES

    return OFFICIAL_VALIDATION_SIZES


class _Stages:
    """Stage cache: ``<out>/.stages/<name>.json`` records the config that produced a stage."""

    def __init__(self, cfg: DemoConfig, log: Callable[[str], None]) -> None:
        self.cfg, self.log = cfg, log
        self.dir = cfg.out / ".stages"

    def done(self, name: str, *outputs: Path) -> dict[str, Any] | None:
        """The stage's record if it ran with the current settings and its ``outputs`` still exist."""
        path = self.dir / f"{name}.json"
        if not path.is_file() or not all(p.exists() for p in outputs):
            return None
        info = json.loads(path.read_text())
        return info if info.get("key") == self.cfg.stage_key(name) else None

    def mark(self, name: str, **info: Any) -> None:
        atomic_write_json(self.dir / f"{name}.json", {"key": self.cfg.stage_key(name), **info})

    def timed(self, name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        self.log(f"[demo] {name} ...")
        out = fn()
        self.cfg.stage_times[name] = round(time.perf_counter() - t0, 1)
        self.log(f"[demo] {name} done in {self.cfg.stage_times[name]:.1f} s")
        return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def run_demo(cfg: DemoConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run (or reuse) every stage; returns paths and timings."""
    import torch

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    torch.set_num_threads(cfg.threads)
    cfg.out = Path(cfg.out)
    cfg.out.mkdir(parents=True, exist_ok=True)
    stages = _Stages(cfg, log)
    data = cfg.out / "data"

    # 1. data -------------------------------------------------------------------------------
    from oodbench.datasets.synth import generate

    if stages.done("data", data) is None:
        # a tree from another oodbench version / seed is replaced, and so is everything built on it
        stages.timed("data", lambda: generate(data, seed=cfg.seed, split_sizes=cfg.split_sizes, force=True))
        for stale in ("predictions", "results", "plots"):
            shutil.rmtree(cfg.out / stale, ignore_errors=True)
        stages.mark("data")

    # 2. closed-set segmenter ----------------------------------------------------------------
    seg_ckpt = cfg.out / "models" / "segmenter.pth"
    if stages.done("segmenter", seg_ckpt) is None:
        def train_seg() -> dict[str, Any]:
            from oodbench.training.segmenter import SegmenterTrainConfig, train_segmenter

            work = cfg.out / "train-segmenter"
            shutil.rmtree(work, ignore_errors=True)
            res = train_segmenter(SegmenterTrainConfig(
                out_dir=str(work), model=SEGMENTER, data_root=str(data), crop_size=cfg.seg_crop,
                scale_min=0.75, scale_max=1.5, batch_size=cfg.seg_batch, optimizer="adamw", lr=cfg.seg_lr,
                max_iters=cfg.seg_iters, epochs=10_000, ckpt_every=cfg.seg_iters, keep_iter_ckpts=False,
                val_every=0, seed=cfg.seed, device=cfg.device, num_workers=0, progress=cfg.progress,
                resume="no",
            ))
            seg_ckpt.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(res.last_checkpoint, seg_ckpt)
            return {"val": res.last_val, "wall_s": res.wall_s}

        info = stages.timed("segmenter", train_seg)
        stages.mark("segmenter", sha=_sha(seg_ckpt), **info)
        shutil.rmtree(cfg.out / "predictions", ignore_errors=True)  # stale scores of an old model
    seg_info = stages.done("segmenter") or {}

    # 3. COCO outlier masks ---------------------------------------------------------------------
    from oodbench.datasets.coco import MASK_DIR, prepare_coco_ood

    if stages.done("coco", data / "coco" / MASK_DIR) is None:  # the masks live inside the data tree

        stats = stages.timed("coco", lambda: prepare_coco_ood(data / "coco"))
        stages.mark("coco", stats=stats if isinstance(stats, dict) else str(stats))

    # 4. RPL+CoroCL ---------------------------------------------------------------------------
    rpl_ckpt = cfg.out / "models" / "rpl.pth"
    if stages.done("rpl", rpl_ckpt) is None:
        def train_rpl_stage() -> dict[str, Any]:
            from oodbench.methods.rpl.train import RPLTrainConfig, train_rpl

            work = cfg.out / "train-rpl"
            shutil.rmtree(work, ignore_errors=True)
            res = train_rpl(RPLTrainConfig(
                out_dir=str(work), segmenter=SEGMENTER, checkpoint=str(seg_ckpt), data_root=str(data),
                crop_size=cfg.rpl_crop, batch_size=cfg.rpl_batch, lr=cfg.rpl_lr, max_iters=cfg.rpl_iters,
                paste_scales=cfg.rpl_paste_scales,
                epochs=10_000, ckpt_every=cfg.rpl_iters, keep_iter_ckpts=False, val_every=0,
                val_splits="none", seed=cfg.seed, device=cfg.device, num_workers=0, progress=cfg.progress, resume="no",
            ))
            shutil.copy2(res.last_checkpoint, rpl_ckpt)
            return {"last_logs": res.last_logs, "wall_s": res.wall_s}

        info = stages.timed("rpl", train_rpl_stage)
        stages.mark("rpl", sha=_sha(rpl_ckpt), **info)
        shutil.rmtree(cfg.out / "predictions" / "anomaly_p" / "rpl", ignore_errors=True)
        shutil.rmtree(cfg.out / "predictions" / "semantic" / "rpl", ignore_errors=True)

    # 5. every method on every labelled split ---------------------------------------------------
    from oodbench.datasets import resolve_splits
    from oodbench.methods import build
    from oodbench.runner import RunConfig, run_method

    splits, skipped = resolve_splits(["all"], str(data))
    for split_name, reason in sorted(skipped.items()):
        log(f"oodbench: skipping {split_name}: {reason.splitlines()[0]}")
    run_cfg = RunConfig(out=cfg.out / "predictions", results_dir=cfg.out / "results", device=cfg.device,
                        progress=cfg.progress)

    def runs() -> None:
        for name in DEMO_METHODS:
            if name == "rpl":
                method = build("rpl", segmenter=SEGMENTER, checkpoint=str(rpl_ckpt))
            else:
                method = build(name, segmenter=SEGMENTER, checkpoint=str(seg_ckpt))
            run_method(name, splits, run_cfg, method=method)

    stages.timed("runs", runs)

    # 6. report -----------------------------------------------------------------------------------
    from oodbench import leaderboard as L

    from .demo_plots import plot_curves, plot_overlays

    def report() -> dict[str, Any]:
        df = L.load(run_cfg.results_dir)
        text = L.render_markdown(df, title="oodbench demo leaderboard (synthetic benchmark)")
        atomic_write_text(cfg.out / "leaderboard.md", text)
        curves = plot_curves(splits, run_cfg.out, DEMO_METHODS, cfg.out / "plots")
        overlays = plot_overlays(splits, run_cfg.out, ("energy", "rpl"), cfg.out / "plots")
        return {"leaderboard": text, "curves": curves, "overlays": overlays}

    rep = stages.timed("report", report)
    summary = {
        "out": str(cfg.out),
        "leaderboard": str(cfg.out / "leaderboard.md"),
        "results": str(run_cfg.results_dir),
        "plots": [str(p) for p in rep["curves"] + rep["overlays"]],
        "segmenter_val": seg_info.get("val", {}),
        "stage_times_s": cfg.stage_times,
        "synthetic": True,
    }
    atomic_write_json(cfg.out / "demo-summary.json", summary)
    print(rep["leaderboard"])
    return summary


def _cmd_demo(args: argparse.Namespace) -> int:
    cfg = DemoConfig(out=Path(args.out), seed=args.seed, device=args.device, threads=args.threads,
                     progress=not args.quiet)
    run_demo(cfg)
    return 0


def add_demo_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole pipeline on the built-in synthetic benchmark (CPU, minutes)")
    p.add_argument("--out", default="demo-out", help="output folder (cached stages are reused)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (the README numbers use 2)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_demo)
