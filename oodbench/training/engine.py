"""The training loop shared by the closed-set and the RPL trainers.

:class:`Trainer` owns the iteration bookkeeping; a subclass supplies the model-specific parts:

* ``setup()`` -- build model, optimizer (groups with ``initial_lr``), data; set
  ``self.iters_per_epoch`` and ``self.schedule`` (:class:`~oodbench.training.schedule.PolySchedule`);
* ``make_batches(epoch, start_batch)`` -- this rank's batches of one epoch, from batch
  ``start_batch`` on (an :class:`~oodbench.training.sampler.EpochBatchSampler` makes it exact);
* ``train_step(batch, iteration) -> dict[str, float]`` -- one optimisation step; returns the
  *global* (all-rank) values to log;
* ``payload()`` / ``load_payload(d)`` -- checkpoint contents (load weights with
  :meth:`Trainer.load_model_state`, which names the file and the mismatch in one line);
* ``model_field`` -- the config field naming the architecture (its mismatch leads resume errors);
* ``validate(iteration) -> dict | None`` -- optional periodic validation.

Loop contract (why resume is exact): before step ``t`` the LR is set to the poly value for ``t``
and the global RNGs are re-seeded from ``(seed, rank, t)``; the data of step ``t`` is a pure
function of ``(seed, epoch, batch)``. A checkpoint written after step ``t`` holds the model,
optimizer and ``iteration = t + 1``; resuming from it replays exactly the steps an uninterrupted
run would take. Files: ``iter_<N>.pth`` (optional) and ``last.pth`` (a hard link to the newest,
both written atomically), ``best-<split>-<metric>.pth`` per ``--select`` rule (:mod:`.selection`;
written after a validation that improves it, carrying ``selected_on``), ``train.csv``, ``val.csv``,
``config.json`` and TensorBoard events. Periodic validation runs every ``val_every`` iterations
once ``val_from_epoch`` epochs are done, and always after the last step.

Resume contract (:mod:`.resume`): the checkpoint is read *before* ``setup()``; a configuration
that differs from the stored one is refused before anything is built or written, or, with
``--resume-anyway``, replaced by the stored one (the ignored flags are printed), so
``config.json`` always describes the run the checkpoint continues. ``.tmp-*`` files left by a
kill during a write are removed at start; only ``last.pth`` (or ``--resume PATH``) is resumed from.
"""
from __future__ import annotations

import os
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from oodbench.atomic import atomic_path, atomic_write_json
from oodbench.cli_config import config_to_dict

from .checkpointing import find_resume, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import EngineConfig
from .distributed import DistContext, barrier, init_distributed
from .logs import CSVLogger, TensorBoardLogger, progress
from .resume import ResumeError, check_state_dict, describe_ignored, reconcile_config, remove_stale_temporaries
from .seeding import derive_seed, seed_everything, set_deterministic
from .selection import BestTracker, best_filename, parse_rules

__all__ = ["Trainer", "TrainResult"]


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns."""

    iteration: int
    total_iters: int
    stopped_early: bool
    out_dir: Path
    last_checkpoint: Path | None
    last_logs: dict[str, float] = field(default_factory=dict)
    last_val: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    resumed_from: int | None = None


class Trainer:
    """Base class of the trainers (see module doc)."""

    desc = "train"
    model_field: str | None = None

    def __init__(self, cfg: EngineConfig, ctx: DistContext | None = None) -> None:
        self.cfg = cfg
        self.ctx = ctx if ctx is not None else init_distributed(cfg.device)
        self.device = self.ctx.device
        self.out_dir = Path(cfg.out_dir)
        self.iteration = 0
        self.iters_per_epoch = 0
        self.schedule: Any = None
        self._resume_from: Path | None = None
        self._resume_holds: str | None = None
        self.selection = BestTracker(parse_rules(getattr(cfg, "select", "")))
        if cfg.deterministic:
            set_deterministic(True)
        seed_everything(cfg.seed, self.ctx.rank)

    # ---------------------------------------------------------------- to implement
    def setup(self) -> None:
        raise NotImplementedError

    def make_batches(self, epoch: int, start_batch: int) -> Iterable[Any]:
        raise NotImplementedError

    def train_step(self, batch: Any, iteration: int) -> dict[str, float]:
        raise NotImplementedError

    def payload(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_payload(self, payload: dict[str, Any]) -> None:
        raise NotImplementedError

    def validate(self, iteration: int) -> dict[str, float] | None:
        return None

    # ---------------------------------------------------------------- provided
    @property
    def total_iters(self) -> int:
        total = self.cfg.epochs * self.iters_per_epoch
        if self.cfg.max_iters is not None:
            total = min(total, int(self.cfg.max_iters))
        return total

    def checkpoint_path(self, iteration: int) -> Path:
        return self.out_dir / f"iter_{iteration:06d}.pth"

    def _full_payload(self) -> dict[str, Any]:
        payload = self.payload()
        payload.update(
            iteration=self.iteration,
            epoch=self.iteration // max(self.iters_per_epoch, 1),
            config=config_to_dict(self.cfg),
            rng=rng_state(),
            world_size=self.ctx.world_size,
            selection_best=self.selection.state_dict(),
        )
        return payload

    def save_best(self, val: dict[str, float]) -> list[Path]:
        """Write ``best-<split>-<metric>.pth`` for every rule this validation improves.

        Called where validation results exist (rank 0); no barrier, the other ranks have none.
        """
        written: list[Path] = []
        if self.ctx.is_main and self.selection.rules:
            won = self.selection.improved(val, self.iteration)
            if won:
                payload = self._full_payload()
                for split, metric, value in won:
                    path = self.out_dir / best_filename(split, metric)
                    save_checkpoint({**payload, "selected_on": split, "selection": {
                        "split": split, "metric": metric, "value": value, "iteration": self.iteration}}, path)
                    written.append(path)
        return written

    def save(self) -> Path:
        """Write ``iter_<N>.pth`` (if kept) and ``last.pth`` on rank 0; all ranks wait for it."""
        last = self.out_dir / "last.pth"
        if self.ctx.is_main:
            payload = self._full_payload()
            if self.cfg.keep_iter_ckpts:
                path = save_checkpoint(payload, self.checkpoint_path(self.iteration))
                with atomic_path(last) as tmp:  # a hard link: no second write of a large file
                    tmp.unlink()
                    try:
                        os.link(path, tmp)
                    except OSError:  # file systems without hard links
                        shutil.copyfile(path, tmp)
                self._prune_iter_checkpoints()
            else:
                save_checkpoint(payload, last)
        barrier(self.ctx)
        return last

    def _prune_iter_checkpoints(self) -> None:
        keep = self.cfg.max_iter_ckpts
        if keep is None:
            return
        files = sorted(self.out_dir.glob("iter_[0-9][0-9][0-9][0-9][0-9][0-9].pth"))
        for old in files[: max(len(files) - max(keep, 0), 0)]:
            old.unlink()  # last.pth is a separate link/copy of the newest, so it survives

    def load_model_state(self, module: torch.nn.Module, state: dict[str, Any]) -> None:
        """``module.load_state_dict(state, strict=True)`` after a one-line check that ``state`` fits."""
        check_state_dict(module.state_dict(), state, self._resume_from or "(payload)", holds=self._resume_holds)
        module.load_state_dict(state, strict=True)

    def _read_resume(self) -> dict[str, Any] | None:
        """The checkpoint to resume from, with ``self.cfg`` checked against (or replaced by) its config."""
        path = find_resume(self.out_dir, self.cfg.resume)
        if path is None:
            return None
        payload = load_checkpoint(path, map_location=self.device, required=("iteration",))
        cfg, ignored = reconcile_config(self.cfg, payload, path, self.model_field)
        if ignored:
            self.cfg = cfg
            seed_everything(cfg.seed, self.ctx.rank)
            if self.ctx.is_main:
                print(f"{self.desc}: {describe_ignored(path, ignored)}", file=sys.stderr)
        stored_world = payload.get("world_size")
        if stored_world is not None and int(stored_world) != self.ctx.world_size:
            # --batch-size is per process: another world size is another global batch (and data order)
            per_rank = getattr(self.cfg, "batch_size", 1)
            what = (f"{path} was written by {int(stored_world)} process(es), this run has {self.ctx.world_size}: "
                    f"the global batch would change from {int(stored_world) * per_rank} to "
                    f"{self.ctx.world_size * per_rank}")
            if not getattr(self.cfg, "resume_anyway", False):
                raise ResumeError(f"{what}; resume with --nproc_per_node {int(stored_world)}, or add "
                                  "--resume-anyway to continue with the new world size")
            if self.ctx.is_main:
                print(f"{self.desc}: --resume-anyway: {what}", file=sys.stderr)
        self._resume_from = path
        if self.ctx.is_main:
            print(f"{self.desc}: resuming from {path} at iteration {int(payload['iteration'])}", file=sys.stderr)
        stored = payload.get("config")
        if self.model_field and isinstance(stored, dict):
            self._resume_holds = stored.get(self.model_field)
        return payload

    def _resume(self, payload: dict[str, Any] | None) -> int | None:
        if payload is None:
            return None
        self.load_payload(payload)
        self.iteration = int(payload["iteration"])
        self.selection.load_state_dict(payload.get("selection_best"))
        if self.ctx.world_size == 1 and "rng" in payload:
            set_rng_state(payload["rng"])
        return self.iteration

    def _validation_due(self) -> bool:
        """Periodic validation after this step: every ``val_every`` from epoch ``val_from_epoch`` on."""
        every = self.cfg.val_every
        started = self.iteration > getattr(self.cfg, "val_from_epoch", 0) * self.iters_per_epoch
        return bool(every) and self.iteration % every == 0 and started

    def _seed_step(self, t: int) -> None:
        s = derive_seed(self.cfg.seed, self.ctx.rank, t, "step")
        random.seed(s)
        np.random.seed(s & 0xFFFFFFFF)
        torch.manual_seed(s)

    def fit(self) -> TrainResult:
        """Run (or resume) training up to ``total_iters`` or ``stop_after``."""
        t_start = time.perf_counter()
        main = self.ctx.is_main
        if main:
            stale = remove_stale_temporaries(self.out_dir)
            if stale:
                print(f"{self.desc}: removed {len(stale)} temporary file(s) left by an interrupted write in "
                      f"{self.out_dir}", file=sys.stderr)
        resume_payload = self._read_resume()
        self.setup()
        if self.iters_per_epoch < 1:
            raise RuntimeError(f"{type(self).__name__}.setup() must set iters_per_epoch >= 1")
        total = self.total_iters
        resumed = self._resume(resume_payload)
        del resume_payload  # the model and optimizer hold copies now
        if main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.out_dir / "config.json", {**config_to_dict(self.cfg), "world_size": self.ctx.world_size})
        csv_log = CSVLogger(self.out_dir / "train.csv", resume_iteration=resumed, enabled=main)
        val_log = CSVLogger(self.out_dir / "val.csv", resume_iteration=resumed, flush_every=1, enabled=main)
        tb = TensorBoardLogger(self.out_dir / "tb", purge_step=resumed, enabled=main)
        if main and tb.writer is None and tb.reason:
            print(f"{self.desc}: {tb.reason}; logs go to {self.out_dir / 'train.csv'}", file=sys.stderr)
        bar = progress(total, self.iteration, enabled=main and self.cfg.progress, desc=self.desc)
        last_logs: dict[str, float] = {}
        last_val: dict[str, float] = {}
        last_ckpt: Path | None = None
        stopped = False
        try:
            while self.iteration < total and not stopped:
                epoch, start_batch = divmod(self.iteration, self.iters_per_epoch)
                for batch in self.make_batches(epoch, start_batch):
                    t = self.iteration
                    lr = self.schedule.set(t)
                    self._seed_step(t)
                    tic = time.perf_counter()
                    logs = self.train_step(batch, t)
                    self.iteration = t + 1
                    last_logs = {"iteration": self.iteration, "epoch": epoch, "lr": lr, **logs,
                                 "step_s": time.perf_counter() - tic}
                    if self.iteration % self.cfg.log_every == 0 or self.iteration == total:
                        csv_log.log(last_logs)
                        tb.log(self.iteration, last_logs, prefix="train/")
                    bar.update(1)
                    if "total" in logs:
                        bar.set_postfix(loss=f"{logs['total']:.4f}")
                    done = self.iteration >= total
                    if self._validation_due() or done:
                        val = self.validate(self.iteration)
                        if val:
                            last_val = {"iteration": self.iteration, **val}
                            val_log.log(last_val)
                            tb.log(self.iteration, val, prefix="val/")
                            self.save_best(val)
                    if self.iteration % self.cfg.ckpt_every == 0 or done:
                        csv_log.flush()
                        last_ckpt = self.save()
                    if done:
                        break
                    if self.cfg.stop_after is not None and self.iteration >= self.cfg.stop_after:
                        stopped = True
                        break
        finally:
            csv_log.flush()
            val_log.flush()
            tb.close()
            bar.close()
        return TrainResult(
            iteration=self.iteration, total_iters=total, stopped_early=stopped, out_dir=self.out_dir,
            last_checkpoint=last_ckpt, last_logs=last_logs, last_val=last_val,
            wall_s=time.perf_counter() - t_start, resumed_from=resumed,
        )
