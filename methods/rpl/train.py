"""RPL+CoroCL training (``oodbench train --method rpl``; ``torchrun ... -m oodbench.methods.rpl.train``).

One step (``yyliu01/RPL:rpl_corocl.code/engine/trainer.py``; docs/rpl-official.md §3-§6):

1. batch = ``b`` city-mix crops (COCO objects pasted, label 254) + their ``b`` COCO context crops
   (:mod:`.data`), ``b`` per rank;
2. **CoroCL gate**: ``g`` = number of city-mix images containing a 254 pixel, summed over all
   ranks (one all-reduce, so every rank takes the same decision). CoroCL runs iff
   ``corocl_weight > 0`` and ``g >= corocl_min_images`` (2: the single-GPU reference rule). The
   reference all-gathered per-rank counts and required >= 2 on *every* rank, because its loss
   ``.squeeze()``d the batch dimension (issue #2; crash fixed in ``0d3c0b3``). Here labels keep
   their batch dimension and sampling is global, so a rank with 0 or 1 such image is fine;
3. forward ``cat([city_mix, coco_ctx])`` when CoroCL runs (the residual block's BN then sees both,
   as in the reference), else ``city_mix`` only; the segmenter is frozen and in eval mode;
4. loss = ``L_ce + L_reg + 0.05 L_energy`` (:func:`.losses.rpl_loss_parts`; masked means over
   the *global* batch) ``+ corocl_weight * L_CoroCL`` (on the images with a pasted object and the
   COCO images at the same indices; pools sampled over all ranks with a generator keyed by
   ``(seed, iteration)``, :class:`.losses.DistributedPoolSampler`);
5. Adam (betas 0.9/0.999, no weight decay), lr 7.5e-5 and 10x on the RPL head
   (``atten_aspp_final``), poly 0.9 over ``epochs * iters_per_epoch`` steps.

**Multi-process equivalence.** N ranks with batch b give the same loss curve as one process with
batch N*b: the data order is rank-contiguous (:mod:`oodbench.training.sampler`), per-sample
augmentation is keyed by the sample, masked means use global pixel counts, CoroCL samples
globally, and the residual block's BN uses global statistics (SyncBatchNorm on CUDA,
:class:`~oodbench.training.syncbn.DistBatchNorm2d` with gloo on CPU). ``tests/test_rpl_train_ddp.py``
checks this with ``torchrun --nproc_per_node 2`` on CPU.

Checkpoints: ``{'model': RPLNet.state_dict() (official 'branch1.' layout, loads rev3.pth),
'optimizer', 'iteration', 'epoch', 'config', 'rng', 'world_size'}`` as ``iter_<N>.pth`` and
``last.pth``. Periodic validation calls ``validator(model, iteration) -> dict`` on rank 0
(default ``--val-splits auto``: :func:`oodbench.training.validation.make_anomaly_validator` on every
labelled split under ``--data-root``).

Dropout inside the residual block (the VainF-family ASPP projection has p=0.1; the official WRN38
ASPP has none) draws its masks per rank; ``--residual-dropout 0`` removes it where exact
multi-process equivalence matters.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from oodbench.errors import CheckpointError, UsageError
from oodbench.cli_config import add_dataclass_arguments, arg, config_from_namespace
from oodbench.training.config import EngineConfig
from oodbench.training.device import autocast, maybe_channels_last
from oodbench.training.distributed import DistContext, barrier, cleanup_distributed, global_sum, unwrap, wrap_ddp
from oodbench.training.engine import Trainer, TrainResult
from oodbench.training.entry import run_entry_point
from oodbench.training.sampler import EpochBatchSampler, epoch_loader
from oodbench.training.schedule import PolySchedule
from oodbench.training.seeding import torch_generator
from oodbench.training.seeds import SeedsOptions, run_seeds
from oodbench.training.syncbn import convert_batchnorm

from .data import OutlierExposureSet, coco_pairs_from_root, recipe
from .losses import (
    DEFAULT_ANCHORS,
    DEFAULT_CONTRAST,
    OOD_LABEL,
    POOLS,
    DistributedPoolSampler,
    corocl_loss,
    parse_pools,
    rpl_loss_parts,
)
from .model import PROJECTORS
from .recipes import DEFAULT_RECIPE, RECIPE_HELP, RECIPES, resolve_config

__all__ = ["RPLTrainConfig", "TrainCommandOptions", "RPLTrainer", "build_network", "train_rpl", "add_train_parser", "main"]

@dataclass
class RPLTrainConfig(EngineConfig):
    """Options of ``oodbench train --method rpl`` (defaults: paper and official config).

    On resume (:mod:`oodbench.training.config` module doc) every field below is configuration and
    must match the checkpoint's, except the runtime ones: the input paths (``checkpoint``,
    ``data_root``, ``cityscapes_root``, ``coco_root``; resume restores all weights), the DDP switch
    ``find_unused_parameters``, ``ckpt_every`` and the monitoring (``validator``, ``val_splits``,
    ``val_max_frames``). ``finetune_from`` and ``extra_root`` are input paths (runtime) too.

    Construct it through :func:`oodbench.methods.rpl.recipes.resolve_config` to apply a recipe
    (``RPLTrainConfig(recipe="paper")`` alone only records the name; the CLI always resolves).
    """

    segmenter: str = field(default="deeplabv3plus_wrn38", metadata={"help": "registered closed-set segmenter"})
    checkpoint: str | None = field(default=None, metadata={"runtime": True, "help": "closed-set weights of the segmenter (e.g. cityscapes_best.pth)"})
    data_root: str | None = field(default=None, metadata={"runtime": True, "help": "folder holding cityscapes/ and coco/ (e.g. the synthetic benchmark)"})
    cityscapes_root: str | None = field(default=None, metadata={"runtime": True, "help": "Cityscapes root (default: --data-root)"})
    coco_root: str | None = field(default=None, metadata={"runtime": True, "help": "COCO root with OE masks (default: --data-root)"})
    train_split: str = field(default="train", metadata={"help": "Cityscapes split to train on"})
    crop_size: tuple[int, int] = field(default=(700, 700), metadata={"help": "training crop H W"})
    batch_size: int = field(default=8, metadata={"help": "city-mix images per rank and iteration"})
    lr: float = field(default=7.5e-5, metadata={"help": "Adam learning rate of the residual block"})
    head_lr_mult: float = field(default=10.0, metadata={"help": "LR multiplier of the RPL head (atten_aspp_final)"})
    poly_power: float = field(default=0.9, metadata={"help": "poly LR power"})
    energy_weight: float = field(default=0.05, metadata={"help": "weight of the OoD energy term"})
    corocl_weight: float = field(default=1.0, metadata={"help": "weight of CoroCL (0: RPL only, no projector)"})
    tau: float = field(default=0.1, metadata={"help": "CoroCL temperature"})
    max_views: int = field(default=512, metadata={"help": "CoroCL samples per pool"})
    corocl_min_images: int = field(default=2, metadata={"help": "CoroCL runs when the global batch has this many images with a pasted object"})
    paste_scales: tuple[float, ...] | None = field(default=None, metadata={"help": "override the COCO object scale factors (default {.1,.125,.25,.5,.75}, for 700 px crops)"})
    reference_quirks: bool = field(default=False, metadata={"help": "reproduce the reference data/LR quirks (methods/rpl/data.py table)"})
    residual_dropout: float | None = field(default=None, metadata={"help": "override the dropout probability inside the residual block (VainF-family ASPP: 0.1; WRN38 has none); masks are drawn per rank, so only 0 makes N ranks match 1 process exactly"})
    find_unused_parameters: bool = field(default=True, metadata={"runtime": True, "help": "DDP find_unused_parameters (the projector idles on RPL-only steps)"})
    validator: Any = field(default=None, metadata={"runtime": True, "cli": False, "help": "callable(model, iteration) -> dict"})
    val_splits: str = field(default="auto", metadata={"runtime": True, "help": "labelled anomaly splits under --data-root to monitor every --val-every iterations and at the end: 'auto' (all found), 'paper' (those found of the released code's five: FS Static/L&F val, SMIYC anomaly/obstacle val, RoadAnomaly), 'none', or comma-separated names"})
    val_max_frames: int | None = field(default=None, metadata={"runtime": True, "help": "at most this many frames per validation split"})
    epochs: int = field(default=40, metadata={"help": "epochs (40 in the official config, 80 in the authors' reported run)"})
    ckpt_every: int = field(default=185, metadata={"runtime": True, "help": "iterations between checkpoints (the reference's eval_iter)"})
    # -- recipe and ablations (configuration: they decide the weights; recorded in every checkpoint
    #    and, through the checkpoint, in the hparams of every result record)
    recipe: str = field(default=DEFAULT_RECIPE, metadata={"choices": list(RECIPES), "help": RECIPE_HELP})
    anchors: str = field(default=",".join(DEFAULT_ANCHORS), metadata={
        "help": f"CoroCL anchor set: comma-separated pools from {', '.join(POOLS)} (supplementary Table 3)"})
    contrast: str = field(default=",".join(DEFAULT_CONTRAST), metadata={
        "help": "CoroCL contrast set: comma-separated pools (the anchors' own samples are reused where the "
                "sets share a pool; Table 3)"})
    projector: str = field(default="linear", metadata={"choices": list(PROJECTORS), "help": "CoroCL projector: "
        + "; ".join(f"{k}: {v}" for k, v in PROJECTORS.items()) + " (Table 4)"})
    embed_dim: int | None = field(default=None, metadata={
        "help": "CoroCL embedding depth R (projector output channels; default: the decoder width, 304 on "
                "every DeepLabV3+ here, the paper's best)"})
    # -- fine-tuning with extra data (supplementary §B)
    finetune_from: str | None = field(default=None, metadata={"runtime": True, "help": (
        "start from this RPL checkpoint's weights (segmenter + residual block), with a fresh optimizer and "
        "LR schedule; replaces --checkpoint")})
    extra_data: str = field(default="", metadata={"help": (
        "extra closed-set training sets added to Cityscapes, comma-separated (vistas, vistas-v1.2, vistas-v2.0, "
        "wilddash2; supplementary §B fine-tunes on vistas,wilddash2 for 10 epochs)")})
    extra_root: str | None = field(default=None, metadata={"runtime": True, "help": (
        "folder holding vistas/ and wd_public_02/ (default: --data-root)")})
    extra_short_side: int | None = field(default=1024, metadata={"help": (
        "rescale extra-set images to this shorter side before cropping (1024 = Cityscapes' height, so objects "
        "keep the Cityscapes scale); 0 keeps their size")})


#: the validation sets of the released trainer (docs/rpl-official.md §6, ``valid.py``), in its order
PAPER_VAL_SPLITS = ("smiyc-anomaly-val", "smiyc-obstacle-val", "fishyscapes-static-val", "fishyscapes-laf-val",
                    "road-anomaly")


def _roots(cfg: RPLTrainConfig) -> tuple[Path, Path]:
    city = cfg.cityscapes_root or cfg.data_root
    coco = cfg.coco_root or cfg.data_root
    if city is None or coco is None:
        raise UsageError("train --method rpl: pass --data-root (holding cityscapes/ and coco/) "
                         "or both --cityscapes-root and --coco-root")
    return Path(city), Path(coco)


def build_network(cfg: RPLTrainConfig, segmenter: torch.nn.Module) -> torch.nn.Module:
    """The RPL network the configuration asks for on ``segmenter`` (closed-set weights loaded).

    RPL-only (``corocl_weight`` 0) has no projector; otherwise the projector is ``cfg.projector``
    with depth ``cfg.embed_dim`` -- the only parts of the network the ablation options touch.
    """
    from .model import RPLNet

    return RPLNet(segmenter, projector=cfg.corocl_weight > 0, projector_kind=cfg.projector,
                  embed_dim=cfg.embed_dim)


def _share(local_sum: torch.Tensor, global_count: float, world: int) -> torch.Tensor:
    """This rank's share of a global masked mean (DDP averages the shares' gradients)."""
    return local_sum * (world / global_count) if global_count > 0 else local_sum * 0.0


class RPLTrainer(Trainer):
    """RPL+CoroCL trainer (module doc). ``model``/``city``/``coco`` override building from the config."""

    desc = "train-rpl"
    model_field = "segmenter"

    def __init__(self, cfg: RPLTrainConfig, ctx: DistContext | None = None, model: torch.nn.Module | None = None,
                 city: Any = None, coco: Sequence[tuple[Any, Any]] | None = None) -> None:
        super().__init__(cfg, ctx)
        self.cfg: RPLTrainConfig = cfg
        self._model, self._city, self._coco = model, city, coco
        self._val_names: list[str] | None = None

    # ---------------------------------------------------------------- setup
    def _build_model(self) -> torch.nn.Module:
        from oodbench import segmenters

        from oodbench.training.resume import check_state_dict

        from .weights import is_rpl_state, load_rpl_state, read_rpl_state

        cfg = self.cfg
        if cfg.finetune_from is not None:
            sd, report = read_rpl_state(cfg.finetune_from)
            if not is_rpl_state(sd):
                raise UsageError(f"--finetune-from {cfg.finetune_from}: not an RPL checkpoint (no residual block); "
                                 "pass closed-set weights with --checkpoint")
            with torch.device("meta"):  # every weight comes from the file
                net = build_network(cfg, segmenters.build(cfg.segmenter))
            check_state_dict(net.state_dict(), sd, f"--finetune-from {cfg.finetune_from}")  # one line on a misfit
            load_rpl_state(net, sd, report, strict=True, assign=True)
            net.freeze()
            return net
        if cfg.checkpoint is None:
            raise UsageError("train --method rpl: --checkpoint (closed-set weights of the segmenter) is required")
        return build_network(cfg, segmenters.build(cfg.segmenter, checkpoint=cfg.checkpoint))

    def setup(self) -> None:
        cfg, ctx = self.cfg, self.ctx
        net = self._model if self._model is not None else self._build_model()
        rb = net.branch1.residual_block
        if cfg.residual_dropout is not None:
            for m in rb.modules():
                if isinstance(m, torch.nn.modules.dropout._DropoutNd):
                    m.p = float(cfg.residual_dropout)
        net.branch1.residual_block = convert_batchnorm(rb, ctx)
        net = maybe_channels_last(net.to(self.device), self.device)
        net.train()
        self.model = net
        self.ddp = wrap_ddp(net, ctx, find_unused_parameters=cfg.find_unused_parameters)
        groups = net.trainable_parameters(lr=cfg.lr, head_lr_mult=cfg.head_lr_mult)
        self.optimizer = torch.optim.Adam(groups, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)

        parse_pools(cfg.anchors, "--anchors"), parse_pools(cfg.contrast, "--contrast")  # fail before the data
        if self._city is None or self._coco is None:
            from oodbench.training.segmenter import open_cityscapes

            city_root, coco_root = _roots(cfg)
            self._city = self._city if self._city is not None else open_cityscapes(city_root, cfg.train_split)
            self._coco = self._coco if self._coco is not None else coco_pairs_from_root(coco_root)
        city = self._city
        if cfg.extra_data:
            from oodbench.datasets.extra import build_extra_training_sets

            root = cfg.extra_root or cfg.data_root
            if root is None:
                raise UsageError("--extra-data needs --extra-root or --data-root (holding vistas/, wd_public_02/)")
            extras = build_extra_training_sets(cfg.extra_data, root, short_side=cfg.extra_short_side or None)
            city = torch.utils.data.ConcatDataset([city, *extras])
        self.train_set = OutlierExposureSet(city, self._coco, cfg.crop_size, cfg.reference_quirks, cfg.seed,
                                            scales=cfg.paste_scales)
        self.recipe = recipe(cfg.reference_quirks)
        self.iters_per_epoch = EpochBatchSampler.batches_per_epoch(len(self.train_set), cfg.batch_size, ctx.world_size)
        if self.iters_per_epoch < 1:
            raise UsageError(f"{len(self.train_set)} Cityscapes images < one global batch of "
                             f"{cfg.batch_size} x {ctx.world_size}")
        self.schedule = PolySchedule(self.optimizer, self.total_iters, cfg.poly_power,
                                     off_by_one=self.recipe.lr_off_by_one)
        self.pool_sampler = DistributedPoolSampler(ctx)
        self.validator = cfg.validator if cfg.validator is not None else self._split_validator()
        self.validating = self.validator is not None  # the same on every rank (no barrier mismatch)
        if self.selection.rules and not self.validating:
            raise UsageError(f"--select {cfg.select}: needs periodic validation (--val-splits, --val-every) and no labelled "
                             "split was found to validate on; pass --select '' to train without selection")
        named = [r.split for r in self.selection.rules if r.split != "*"]
        if named and self._val_names is not None and set(named) - set(self._val_names):
            raise UsageError(f"--select: split(s) {', '.join(sorted(set(named) - set(self._val_names)))} are not "
                             f"validated (--val-splits gives {', '.join(self._val_names)})")

    def _split_validator(self):
        """The anomaly monitor on ``--val-splits`` (``auto``: every labelled split under --data-root)."""
        cfg = self.cfg
        self._val_names = None
        choice = (cfg.val_splits or "none").strip()
        if choice == "none":
            return None
        from oodbench.datasets import find_available
        from oodbench.training.validation import make_anomaly_validator

        if cfg.data_root is None:
            if choice in ("auto", "paper"):
                return None
            raise UsageError("--val-splits needs --data-root (where the labelled splits live)")
        if choice in ("auto", "all", "paper"):
            names, _missing = find_available(cfg.data_root)
            if choice == "paper":  # the released code's five validation sets, those found
                names = [n for n in PAPER_VAL_SPLITS if n in names]
            if not names:
                if self.ctx.is_main:
                    print(f"train-rpl: no labelled anomaly split under {cfg.data_root}; no validation", file=sys.stderr)
                return None
        else:
            names = [n.strip() for n in choice.split(",") if n.strip()]
        self._val_names = list(names)
        if self.ctx.is_main:
            print(f"train-rpl: validating on {', '.join(names)}", file=sys.stderr)
        return make_anomaly_validator(cfg.data_root, names, max_frames=cfg.val_max_frames)

    def make_batches(self, epoch: int, start_batch: int):
        return epoch_loader(self.train_set, self.cfg.batch_size, self.cfg.seed, epoch, self.ctx.rank,
                            self.ctx.world_size, self.device, self.cfg.num_workers, self.recipe.shuffle, start_batch)

    # ---------------------------------------------------------------- step
    def train_step(self, batch: Any, iteration: int) -> dict[str, float]:
        cfg, ctx = self.cfg, self.ctx
        city_img, city_gt, coco_img, coco_gt = (t.to(self.device, non_blocking=True) for t in batch)
        b = city_img.shape[0]
        has_ood = (city_gt == OOD_LABEL).flatten(1).any(dim=1)
        n_ood_images = int(global_sum(has_ood.sum(), ctx))
        use_corocl = cfg.corocl_weight > 0 and n_ood_images >= cfg.corocl_min_images
        x = torch.cat([city_img, coco_img]) if use_corocl else city_img
        self.ddp.train()
        with autocast(self.device, cfg.amp, cpu=cfg.amp_cpu):
            out1, out2, proj = self.ddp(maybe_channels_last(x, self.device))
        parts = rpl_loss_parts(out1[:b], out2[:b], city_gt)
        counts = global_sum(torch.stack([parts["n_in"], parts["n_ood"]]).double(), ctx)
        n_in, n_ood = float(counts[0]), float(counts[1])
        w = ctx.world_size
        loss = (_share(parts["ce"], n_in, w) + _share(parts["reg"], n_in, w)
                + cfg.energy_weight * _share(parts["energy"], n_ood, w))
        corocl = torch.zeros((), device=self.device)
        if use_corocl:
            gen = torch_generator(cfg.seed, iteration, "corocl")
            corocl = corocl_loss(proj[:b][has_ood], city_gt[has_ood], proj[b:][has_ood], coco_gt[has_ood],
                                 tau=cfg.tau, max_views=cfg.max_views, generator=gen, sampler=self.pool_sampler,
                                 anchors=parse_pools(cfg.anchors), contrast=parse_pools(cfg.contrast, "--contrast"))
            loss = loss + cfg.corocl_weight * corocl
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

        sums = global_sum(torch.stack([parts["ce"], parts["reg"], parts["energy"]]).detach().double(), ctx)
        ce = float(sums[0]) / n_in if n_in else 0.0
        reg = float(sums[1]) / n_in if n_in else 0.0
        energy = float(sums[2]) / n_ood if n_ood else 0.0
        cl = float(corocl.detach())
        return {
            "total": ce + reg + cfg.energy_weight * energy + cfg.corocl_weight * cl,
            "ce": ce, "reg": reg, "energy": energy, "corocl": cl,
            "corocl_active": int(use_corocl), "ood_images": n_ood_images,
        }

    # ---------------------------------------------------------------- checkpoints / validation
    def payload(self) -> dict[str, Any]:
        return {"model": unwrap(self.model).state_dict(), "optimizer": self.optimizer.state_dict(),
                "method": "rpl", "segmenter": self.cfg.segmenter}

    def load_payload(self, payload: dict[str, Any]) -> None:
        if "model" not in payload or "optimizer" not in payload:
            raise CheckpointError(f"RPL checkpoint lacks 'model'/'optimizer' (has {sorted(payload)})")
        self.load_model_state(unwrap(self.model), payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])

    def validate(self, iteration: int) -> dict[str, float] | None:
        if not self.validating:
            return None
        out = None
        if self.ctx.is_main:
            net = unwrap(self.model)
            net.eval()
            try:
                with torch.no_grad():
                    out = self.validator(net, iteration)
            finally:
                net.train()  # re-applies the frozen/eval split (docs/rpl-official.md §12.5)
        barrier(self.ctx)
        return out


def train_rpl(config: RPLTrainConfig, **kwargs: Any) -> TrainResult:
    """Train (or resume) RPL+CoroCL; ``kwargs`` go to :class:`RPLTrainer` (``model``, ``city``, ``coco``, ``ctx``)."""
    trainer = RPLTrainer(config, **kwargs)
    try:
        return trainer.fit()
    finally:
        if kwargs.get("ctx") is None:
            cleanup_distributed(trainer.ctx)


@dataclass
class TrainCommandOptions:
    """The flags of ``oodbench train`` besides :class:`RPLTrainConfig` and ``--seeds``."""

    method: str = field(default="rpl", metadata=arg("method to train (default: rpl)", choices=["rpl"]))
    config: str | None = field(default=None, metadata=arg(
        "experiment file (experiments/*.toml): its [train] table sets fields; flags override it",
        metavar="FILE.toml"))
    dry_run: bool = field(default=False, metadata=arg(
        "print the resolved configuration (and where each non-default value came from) and exit",
        action="store_true"))


def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``train`` (``--method rpl``) on an argparse ``subparsers``; sets ``func``."""
    p = subparsers.add_parser("train", help="train a method (rpl: RPL+CoroCL on a frozen segmenter; torchrun for multi-GPU)",
                              description=__doc__.split("\n\n")[0])
    add_dataclass_arguments(p, TrainCommandOptions)
    add_dataclass_arguments(p, RPLTrainConfig, suppress_defaults=True)  # a --config file fills the rest
    add_dataclass_arguments(p, SeedsOptions)
    p.set_defaults(func=_run_from_args, config_class=(TrainCommandOptions, RPLTrainConfig, SeedsOptions))
    return p


def resolve_from_args(args: argparse.Namespace) -> tuple[RPLTrainConfig, dict[str, str]]:
    """The configuration of parsed ``train`` arguments: defaults < recipe < --config file < flags."""
    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(RPLTrainConfig) if hasattr(args, f.name)}
    cfg = config_from_namespace(RPLTrainConfig, argparse.Namespace(**flags))  # tuples from nargs lists
    flags = {k: getattr(cfg, k) for k in flags}
    return resolve_config(RPLTrainConfig, flags, getattr(args, "config", None))


def _run_from_args(args: argparse.Namespace) -> int:
    cfg, sources = resolve_from_args(args)
    if getattr(args, "dry_run", False):
        import json

        from oodbench.cli_config import config_to_dict

        print(json.dumps({"config": config_to_dict(cfg), "sources": sources}, indent=2, sort_keys=True))
        return 0
    for result in run_seeds(cfg, args.seeds, train_rpl) if getattr(args, "seeds", None) else [train_rpl(cfg)]:
        state = "stopped" if result.stopped_early else "done"
        print(f"{state} at iteration {result.iteration}/{result.total_iters}; checkpoint: {result.out_dir / 'last.pth'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m oodbench.methods.rpl.train [--method rpl] ...`` (what torchrun launches)."""
    parser = argparse.ArgumentParser(prog="python -m oodbench.methods.rpl.train")
    sub = parser.add_subparsers(dest="command")
    add_train_parser(sub)
    args = parser.parse_args(["train", *(sys.argv[1:] if argv is None else argv)])
    return run_entry_point(args, parser.prog)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
