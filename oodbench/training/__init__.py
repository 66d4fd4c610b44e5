"""Training engine shared by the closed-set trainer and RPL+CoroCL.

Modules (one job each):

* :mod:`.seeding` -- keyed seeds/generators; every random draw is a function of (seed, epoch, index)
  or (seed, iteration);
* :mod:`.sampler` -- deterministic, resumable, world-size-invariant batch order;
* :mod:`.distributed` -- torchrun setup (gloo on CPU, NCCL on CUDA), global sums/means,
  autograd-aware gathers; :mod:`.syncbn` -- global-batch BN on CPU (gloo) and CUDA;
* :mod:`.schedule` -- poly LR; :mod:`.device` -- bf16 autocast / channels-last / pinned memory,
  CUDA only; :mod:`.checkpointing` -- atomic ``weights_only`` checkpoints; :mod:`.resume` -- a resume
  must continue the same run (configuration, weights that fit, stale temporaries);
* :mod:`.logs` -- CSV (+ TensorBoard) logs and tqdm; :mod:`.config` -- dataclass configs -> CLI flags;
* :mod:`.engine` -- the loop (:class:`Trainer`); :mod:`.transforms` -- augmentation primitives;
  :mod:`.validation` -- the anomaly monitor for periodic validation;
* :mod:`.segmenter` -- ``oodbench train-segmenter`` (closed-set DeepLabV3+ training).

RPL+CoroCL training lives with the method: :mod:`oodbench.methods.rpl.train`.
"""
from __future__ import annotations

from .checkpointing import CheckpointError, load_checkpoint, save_checkpoint
from .config import EngineConfig
from .distributed import DistContext, init_distributed
from .engine import Trainer, TrainResult
from .resume import ResumeError
from .schedule import PolySchedule, poly_lr
from .seeding import derive_seed, seed_everything

__all__ = [
    "CheckpointError",
    "DistContext",
    "EngineConfig",
    "PolySchedule",
    "ResumeError",
    "TrainResult",
    "Trainer",
    "derive_seed",
    "init_distributed",
    "load_checkpoint",
    "poly_lr",
    "save_checkpoint",
    "seed_everything",
]
