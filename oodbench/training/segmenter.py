"""Closed-set segmenter training on Cityscapes-format data (``oodbench train-segmenter``).

Recipe (DeepLabV3+ standard, VainF ``DeepLabV3Plus-Pytorch`` / NVIDIA sdcnet style):

* data: ``CityscapesSegmentation(root, split)`` (uint8 RGB image, uint8 train ids, 255 ignore);
  per sample: normalise (ImageNet mean/std), random scale ``s ~ U[scale_min, scale_max]``
  (bilinear image, nearest labels), random crop ``crop_size`` (padded with the mean colour and
  label 255 when smaller), horizontal flip with probability ``flip_prob``; all randomness keyed
  by ``(seed, epoch, sample index)``;
* loss: cross-entropy over non-ignored pixels, averaged over the *global* batch
  (:func:`~oodbench.training.distributed.global_mean_parts`), so N ranks with batch b train like
  one process with batch N*b;
* optimiser: SGD (momentum 0.9, Nesterov off) or AdamW, weight decay on every parameter, poly LR
  (power 0.9) over all iterations;
* BN: plain in one process; synchronised over ranks under torchrun (SyncBatchNorm on CUDA,
  :class:`~oodbench.training.syncbn.DistBatchNorm2d` on CPU);
* validation: closed-set mIoU on the full-resolution ``val_split`` images
  (:class:`oodbench.metrics.ConfusionMatrix`: one global matrix, frames sharded over ranks and the
  matrices summed; classes absent from ground truth and prediction are left out of the mean);
* checkpoints ``{'model_state': state_dict, 'optimizer', 'iteration', 'epoch', 'segmenter',
  'num_classes', 'val', 'config', 'rng'}``, which ``oodbench.segmenters.build(name,
  checkpoint=...)`` loads (it unwraps ``model_state``).
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from oodbench.cli_config import add_dataclass_arguments, config_from_namespace
from oodbench.errors import UsageError

from .config import EngineConfig
from .device import autocast, maybe_channels_last
from .distributed import DistContext, cleanup_distributed, global_mean_parts, global_sum, unwrap, wrap_ddp
from .engine import Trainer, TrainResult
from .entry import run_entry_point
from .sampler import EpochBatchSampler, epoch_loader
from .schedule import PolySchedule
from .seeding import numpy_rng
from .seeds import SeedsOptions
from .syncbn import convert_batchnorm
from .transforms import IGNORE_LABEL, hflip, normalize, random_crop, resize

__all__ = [
    "SegmenterTrainConfig",
    "SegmentationTrainSet",
    "SegmenterTrainer",
    "train_segmenter",
    "add_train_segmenter_parser",
    "open_cityscapes",
    "main",
]


@dataclass
class SegmenterTrainConfig(EngineConfig):
    """Options of ``oodbench train-segmenter`` (engine options: :class:`EngineConfig`).

    On resume (:mod:`oodbench.training.config` module doc) every field below is configuration and
    must match the checkpoint's, except the runtime ones: ``data_root`` (a path; the data may move),
    ``val_split`` (what is monitored) and ``init_checkpoint`` (resume restores all weights).
    """

    model: str = field(default="deeplabv3plus_small", metadata={"help": "registered segmenter name"})
    data_root: str | None = field(default=None, metadata={"runtime": True, "help": "Cityscapes root, or a folder holding cityscapes/ (e.g. the synthetic benchmark)"})
    train_split: str = field(default="train", metadata={"help": "training split"})
    val_split: str | None = field(default="val", metadata={"runtime": True, "help": "validation split (labelled); 'none' to skip validation"})
    init_checkpoint: str | None = field(default=None, metadata={"runtime": True, "help": "initial weights (any format the segmenter loads)"})
    num_classes: int = field(default=19, metadata={"help": "closed-set classes"})
    crop_size: tuple[int, int] = field(default=(512, 1024), metadata={"help": "training crop H W"})
    scale_min: float = field(default=0.5, metadata={"help": "smallest random scale"})
    scale_max: float = field(default=2.0, metadata={"help": "largest random scale"})
    flip_prob: float = field(default=0.5, metadata={"help": "horizontal flip probability"})
    batch_size: int = field(default=8, metadata={"help": "images per rank and iteration"})
    optimizer: str = field(default="sgd", metadata={"help": "optimiser", "choices": ["sgd", "adamw"]})
    lr: float = field(default=0.01, metadata={"help": "base learning rate"})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum"})
    weight_decay: float = field(default=1e-4, metadata={"help": "weight decay"})
    poly_power: float = field(default=0.9, metadata={"help": "poly LR power"})


def open_cityscapes(root: str | os.PathLike, split: str):
    """``oodbench.datasets.cityscapes.CityscapesSegmentation`` (``root`` may hold ``cityscapes/``)."""
    from oodbench.datasets.cityscapes import CityscapesSegmentation

    return CityscapesSegmentation(root, split)


class SegmentationTrainSet(torch.utils.data.Dataset):
    """Augmented view of a ``(uint8 image, uint8 train ids)`` dataset, keyed by ``(index, epoch)``."""

    def __init__(self, base: Any, crop_size: Sequence[int], scale_range: tuple[float, float] = (0.5, 2.0),
                 flip_prob: float = 0.5, seed: int = 0) -> None:
        if not 0 < scale_range[0] <= scale_range[1]:
            raise UsageError(f"scale range must satisfy 0 < min <= max, got {scale_range}")
        self.base, self.crop = base, (int(crop_size[0]), int(crop_size[1]))
        self.scale_range, self.flip_prob, self.seed = scale_range, flip_prob, seed

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, epoch = key
        rng = numpy_rng(self.seed, epoch, index, "segmenter")
        image, label = self.base[index]
        x = normalize(image)
        y = torch.from_numpy(label.astype("int64"))
        lo, hi = self.scale_range
        s = float(rng.uniform(lo, hi)) if hi > lo else lo
        if s != 1.0:
            x, y = resize(x, y, (max(1, round(x.shape[1] * s)), max(1, round(x.shape[2] * s))))
        x, y = random_crop(x, y, self.crop, rng)
        if rng.random() < self.flip_prob:
            x, y = hflip(x, y)
        return x.contiguous(), y.contiguous()


class SegmenterTrainer(Trainer):
    """Closed-set trainer (see module doc). ``train_data``/``val_data`` override the data root."""

    desc = "train-segmenter"
    model_field = "model"

    def __init__(self, cfg: SegmenterTrainConfig, ctx: DistContext | None = None,
                 train_data: Any = None, val_data: Any = None, model: torch.nn.Module | None = None) -> None:
        super().__init__(cfg, ctx)
        self.cfg: SegmenterTrainConfig = cfg
        self._train_data, self._val_data, self._model = train_data, val_data, model

    def setup(self) -> None:
        cfg, ctx = self.cfg, self.ctx
        if self._train_data is None:
            if cfg.data_root is None:
                raise UsageError("train-segmenter: pass --data-root (a Cityscapes-format folder)")
            self._train_data = open_cityscapes(cfg.data_root, cfg.train_split)
            if cfg.val_split and cfg.val_split.lower() != "none":
                self._val_data = open_cityscapes(cfg.data_root, cfg.val_split)
        if self._model is None:
            from oodbench import segmenters

            self._model = segmenters.build(cfg.model, checkpoint=cfg.init_checkpoint, num_classes=cfg.num_classes)
        model = convert_batchnorm(self._model, ctx).to(self.device)
        self.model = maybe_channels_last(model, self.device)
        self.ddp = wrap_ddp(self.model, ctx, find_unused_parameters=False)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if cfg.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        elif cfg.optimizer == "adamw":
            self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        else:
            raise UsageError(f"unknown optimizer {cfg.optimizer!r} (sgd, adamw)")
        self.train_set = SegmentationTrainSet(self._train_data, cfg.crop_size, (cfg.scale_min, cfg.scale_max),
                                              cfg.flip_prob, cfg.seed)
        self.iters_per_epoch = EpochBatchSampler.batches_per_epoch(len(self.train_set), cfg.batch_size, ctx.world_size)
        if self.iters_per_epoch < 1:
            raise UsageError(f"{len(self.train_set)} training images < one global batch of "
                             f"{cfg.batch_size} x {ctx.world_size}")
        self.schedule = PolySchedule(self.optimizer, self.total_iters, cfg.poly_power)

    def make_batches(self, epoch: int, start_batch: int):
        return epoch_loader(self.train_set, self.cfg.batch_size, self.cfg.seed, epoch, self.ctx.rank,
                            self.ctx.world_size, self.device, self.cfg.num_workers, True, start_batch)

    def train_step(self, batch: Any, iteration: int) -> dict[str, float]:
        images, labels = (t.to(self.device, non_blocking=True) for t in batch)
        images = maybe_channels_last(images, self.device)
        self.ddp.train()
        with autocast(self.device, self.cfg.amp, cpu=self.cfg.amp_cpu):
            logits = self.ddp(images)
        loss_sum = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_LABEL, reduction="sum")
        share, count = global_mean_parts(loss_sum, (labels != IGNORE_LABEL).sum(), self.ctx)
        self.optimizer.zero_grad(set_to_none=True)
        share.backward()
        self.optimizer.step()
        loss = float(global_sum(loss_sum.detach().double(), self.ctx)) / max(float(count), 1.0)
        return {"total": loss}

    @torch.no_grad()
    def evaluate_miou(self) -> dict[str, float]:
        """mIoU of the current model on the validation data (:class:`oodbench.metrics.ConfusionMatrix`,
        frames sharded over ranks, matrices summed)."""
        from oodbench.metrics import ConfusionMatrix

        model = self.model
        was_training = model.training
        model.eval()
        acc = ConfusionMatrix(self.cfg.num_classes)
        for i in range(self.ctx.rank, len(self._val_data), self.ctx.world_size):
            image, label = self._val_data[i]
            x = maybe_channels_last(normalize(image)[None].to(self.device), self.device)
            with autocast(self.device, self.cfg.amp, cpu=self.cfg.amp_cpu):
                logits = model(x)
            acc.update(logits.argmax(1)[0].cpu().numpy(), label, frame_id=i)
        acc.matrix = global_sum(torch.from_numpy(acc.matrix), self.ctx).cpu().numpy()
        model.train(was_training)
        res = acc.compute()
        out = {"miou": float(res["closed_miou"])}
        out.update({k: float(v) for k, v in res.items() if k.startswith("iou_")})
        return out

    def validate(self, iteration: int) -> dict[str, float] | None:
        if self._val_data is None:
            return None
        return self.evaluate_miou()

    def payload(self) -> dict[str, Any]:
        return {
            "model_state": unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "segmenter": self.cfg.model,
            "num_classes": self.cfg.num_classes,
        }

    def load_payload(self, payload: dict[str, Any]) -> None:
        self.load_model_state(unwrap(self.model), payload["model_state"])
        self.optimizer.load_state_dict(payload["optimizer"])


def train_segmenter(cfg: SegmenterTrainConfig, **kwargs: Any) -> TrainResult:
    """Train (or resume) a closed-set segmenter; see :class:`SegmenterTrainer` for ``kwargs``."""
    trainer = SegmenterTrainer(cfg, **kwargs)
    try:
        return trainer.fit()
    finally:
        if kwargs.get("ctx") is None:
            cleanup_distributed(trainer.ctx)


def add_train_segmenter_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``train-segmenter`` on an argparse ``subparsers``; sets ``func`` to the runner."""
    p = subparsers.add_parser(
        "train-segmenter",
        help="train a closed-set segmenter on Cityscapes-format data (torchrun for multi-GPU)",
        description=__doc__.split("\n\n")[0],
    )
    add_dataclass_arguments(p, SegmenterTrainConfig)
    add_dataclass_arguments(p, SeedsOptions)
    p.set_defaults(func=_run_from_args, config_class=(SegmenterTrainConfig, SeedsOptions))
    return p


def _run_from_args(args: argparse.Namespace) -> int:
    from .seeds import run_seeds

    cfg = config_from_namespace(SegmenterTrainConfig, args)
    for result in run_seeds(cfg, args.seeds, train_segmenter) if args.seeds else [train_segmenter(cfg)]:
        if result.last_val:
            print(f"iteration {result.iteration}: mIoU {result.last_val.get('miou', float('nan')):.4f}")
        print(f"checkpoint: {result.out_dir / 'last.pth'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m oodbench.training.segmenter ...`` (the entry point for torchrun)."""
    parser = argparse.ArgumentParser(prog="python -m oodbench.training.segmenter")
    sub = parser.add_subparsers(dest="command", required=False)
    add_train_segmenter_parser(sub)
    argv = list(argv) if argv is not None else None
    import sys

    argv = argv if argv is not None else sys.argv[1:]
    args = parser.parse_args(["train-segmenter", *argv])
    return run_entry_point(args, parser.prog)


if __name__ == "__main__":
    raise SystemExit(main())
