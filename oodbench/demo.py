"""``oodbench demo``: the whole system on the built-in synthetic benchmark, on a CPU, in minutes.

Stages (each cached under ``--out``; a rerun reuses what is done and is nearly instant):

1. ``data``      -- ``oodbench synth``: the synthetic benchmark in the official layouts;
2. ``segmenter`` -- train the small closed-set DeepLabV3+ on its Cityscapes-format training set;
3. ``coco``      -- ``oodbench prepare coco-ood`` on its COCO-format outlier source;
4. ``rpl``       -- train RPL+CoroCL on top of the segmenter with outlier exposure;
5. ``runs``      -- ``msp``, ``energy``, ``maxlogit``, ``entropy`` and ``rpl`` on every labelled
   synthetic split, through the same :func:`oodbench.runner.run_method` path ``oodbench run`` uses;
6. ``report``    -- the markdown leaderboard (with 95 % frame-bootstrap intervals), a paired
   comparison of ``rpl`` against the best post-hoc method of each split, PR/ROC curves per split
   and anomaly-map overlays.

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
from .cli_config import add_command, arg, config_from_namespace

__all__ = ["DemoConfig", "run_demo", "add_demo_parser", "DEMO_METHODS"]

DEMO_METHODS = ("msp", "energy", "maxlogit", "entropy", "rpl")
SEGMENTER = "deeplabv3plus_small"
#: bootstrap replicates of the intervals and paired comparisons (seeded with the demo's seed)
BOOTSTRAP_N = 1000


#: the sizes the demo pins (not flags: the README numbers depend on them)
_PINNED = arg(cli=False)


@dataclass
class DemoConfig:
    """Sizes chosen so a cold run fits in ~5 minutes on 2 CPU cores."""

    out: Path = field(default=Path("demo-out"), metadata=arg("output folder (cached stages are reused)"))
    seed: int = field(default=0, metadata=arg("seed of the synthetic data, the training runs and the bootstrap"))
    device: str = field(default="cpu", metadata=arg("torch device: cpu, cuda"))
    progress: bool = field(default=True, metadata=arg("no progress bars", flags=("-q", "--quiet"), action="store_false"))
    #: torch CPU threads; pinned so the printed numbers do not depend on the core count
    threads: int = field(default=2, metadata=arg("torch CPU threads (the README numbers use 2)"))
    #: frame counts of the synthetic validation splits: the released ones (AnomalyTrack 10,
    #: ObstacleTrack 30, FS Static 30); with 8 frames one low-contrast object could decide a pooled FPR95
    split_sizes: dict[str, int] = field(default_factory=lambda: dict(_official_sizes()), metadata=_PINNED)
    seg_iters: int = field(default=300, metadata=_PINNED)
    seg_batch: int = field(default=8, metadata=_PINNED)
    seg_crop: tuple[int, int] = field(default=(128, 256), metadata=_PINNED)
    seg_lr: float = field(default=2e-3, metadata=_PINNED)
    rpl_iters: int = field(default=400, metadata=_PINNED)
    rpl_batch: int = field(default=8, metadata=_PINNED)
    rpl_crop: tuple[int, int] = field(default=(128, 128), metadata=_PINNED)
    rpl_lr: float = field(default=1e-3, metadata=_PINNED)
    #: objects of the synthetic COCO (>= 480 px) scaled for 128 px crops (the paper's factors
    #: assume 640 px COCO images in 700 px crops)
    rpl_paste_scales: tuple[float, ...] = field(default=(0.05, 0.1, 0.15, 0.2, 0.25), metadata=_PINNED)
    stage_times: dict[str, float] = field(default_factory=dict, metadata=_PINNED)

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
    from oodbench.intervals import BootstrapSpec

    spec = BootstrapSpec(n=BOOTSTRAP_N, level=0.95, seed=cfg.seed)
    run_cfg = RunConfig(out=cfg.out / "predictions", results_dir=cfg.out / "results", device=cfg.device,
                        progress=cfg.progress, bootstrap=spec)

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
        text = L.render_markdown(df, title="oodbench demo leaderboard (synthetic benchmark)", ci=True)
        comparisons = _compare_rpl(df, splits, run_cfg.out, spec)
        atomic_write_json(cfg.out / "comparisons.json", comparisons)
        from .compare import render_comparisons

        text += ("\n## Paired comparison: rpl against the best post-hoc method of each split (SYNTHETIC DATA)\n\n"
                 + "The baseline is the post-hoc method with the highest AuPRC on the split.\n\n"
                 + render_comparisons(comparisons))
        atomic_write_text(cfg.out / "leaderboard.md", text)
        curves = plot_curves(splits, run_cfg.out, DEMO_METHODS, cfg.out / "plots")
        overlays = plot_overlays(splits, run_cfg.out, ("energy", "rpl"), cfg.out / "plots")
        return {"leaderboard": text, "curves": curves, "overlays": overlays}

    rep = stages.timed("report", report)
    summary = {
        "out": str(cfg.out),
        "leaderboard": str(cfg.out / "leaderboard.md"),
        "comparisons": str(cfg.out / "comparisons.json"),
        "results": str(run_cfg.results_dir),
        "plots": [str(p) for p in rep["curves"] + rep["overlays"]],
        "segmenter_val": seg_info.get("val", {}),
        "stage_times_s": cfg.stage_times,
        "synthetic": True,
    }
    atomic_write_json(cfg.out / "demo-summary.json", summary)
    print(rep["leaderboard"])
    return summary


def _compare_rpl(df: Any, splits: list, predictions: Path, spec: Any) -> list[dict[str, Any]]:
    """Paired comparison of ``rpl`` against the post-hoc method with the best AuPRC, per split."""
    from .compare import compare_split

    out = []
    for split in splits:
        sub = df[(df["dataset"] == split.name) & (df["protocol"] == split.protocol)]
        posthoc = sub[sub["method"].isin([m for m in DEMO_METHODS if m != "rpl"])]
        if posthoc.empty or not (sub["method"] == "rpl").any():
            continue
        best = str(posthoc.sort_values(["auprc", "method"], ascending=[False, True])["method"].iloc[0])
        out.append(compare_split(split, predictions, "rpl", best, spec))
    return out


def _cmd_demo(args: argparse.Namespace) -> int:
    cfg = config_from_namespace(DemoConfig, args)
    run_demo(cfg)
    return 0


def add_demo_parser(sub: argparse._SubParsersAction) -> None:
    add_command(sub, "demo", DemoConfig, _cmd_demo,
                help="the whole pipeline on the built-in synthetic benchmark (CPU, minutes)")
