"""Training configs as dataclasses; their command-line flags are generated from the fields.

The generator is :mod:`oodbench.cli_config` (every command's flags come from it): each field becomes
``--field-name`` with the field's type, default and ``metadata["help"]``; booleans get
``--x/--no-x``; ``metadata["parse"]`` is a custom argparse type (e.g. :func:`int_or_all`);
``metadata["cli"] = False`` keeps a field (e.g. a Python callback) off the command line. With
``suppress_defaults`` an absent flag leaves no attribute on the namespace, so a caller can tell the
flags given from the defaults (recipes and config files fill the rest,
:mod:`oodbench.methods.rpl.recipes`). One definition therefore serves the Python API
(``train_rpl(RPLTrainConfig(...))``), the CLI and the config stored in checkpoints.

**Configuration vs runtime fields.** A field is *configuration* unless its metadata says
``runtime=True`` (:func:`runtime_fields`). Configuration fields decide the weights a run ends with
(seed, LR, iterations, batch, crop, model, loss weights, bf16 autocast); a resume must use the
checkpoint's values (:mod:`.resume` refuses otherwise). Runtime fields only say where and how the
same computation runs, or what is written besides the weights, and may differ on resume: output
folder, resume switches, device, worker processes, progress bar, deterministic kernels, DDP
options, checkpoint/log/validation intervals and what validation monitors, and the *paths* of the
inputs (data may move to a local disk; resume restores every weight from the checkpoint, so the
initial-weights path no longer matters). New fields are configuration by default: a forgotten
marker refuses a harmless resume rather than accepting a different run.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields
from typing import Any

from oodbench.cli_config import arg

__all__ = ["EngineConfig", "int_or_all", "runtime_fields"]


def _rt(text: str, **extra: Any) -> dict[str, Any]:
    """Metadata of a runtime field (may differ on resume; see module doc): :func:`~oodbench.cli_config.arg`
    plus ``runtime``."""
    return {**arg(text, **extra), "runtime": True}


def int_or_all(text: Any) -> int | None:
    """argparse/TOML value of a count where ``all`` (or ``None``) means no limit; else an int >= 0."""
    if text is None or (isinstance(text, str) and text.strip().lower() == "all"):
        return None
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected an integer >= 0 or 'all', got {text!r}") from None
    if value < 0 or isinstance(text, bool):
        raise argparse.ArgumentTypeError(f"expected an integer >= 0 or 'all', got {text!r}")
    return value


@dataclass
class EngineConfig:
    """Options shared by every trainer (loop, checkpoints, logs, devices).

    Configuration (must match on resume): ``epochs``, ``max_iters`` (the poly horizon), ``seed``,
    ``amp`` (bf16 changes the arithmetic). Runtime (may differ): everything marked ``_rt`` below.
    """

    out_dir: str = field(default="runs/train", metadata=_rt("output folder (checkpoints, train.csv, val.csv, config.json)"))
    epochs: int = field(default=40, metadata=arg("number of epochs"))
    max_iters: int | None = field(default=None, metadata=arg("cap on the total number of iterations (also the poly horizon)"))
    stop_after: int | None = field(
        default=None, metadata=_rt("stop after this iteration without saving, as if killed (tests resume)")
    )
    ckpt_every: int = field(default=500, metadata=_rt("iterations between checkpoints (iter_N.pth + last.pth)"))
    keep_iter_ckpts: bool = field(default=True, metadata=_rt("write iter_N.pth files, not only last.pth"))
    max_iter_ckpts: int | None = field(default=5, metadata=_rt(
        "keep only the newest N iter_N.pth files (WRN38 RPL files are ~0.7 GB); 'all' keeps every one",
        parse=int_or_all))
    val_every: int = field(default=0, metadata=_rt("iterations between validations (0: only at the end)"))
    val_from_epoch: int = field(default=0, metadata=_rt(
        "periodic validation only from this epoch on (0-based; the released RPL code: 5); the final one always runs"))
    select: str = field(default="", metadata=_rt(
        "checkpoint selection rules, comma-separated SPLIT:METRIC ('*' = every validated split; metrics auprc, "
        "auroc, fpr95): each keeps best-<split>-<metric>.pth, the checkpoint of the best validation so far, "
        "which records selected_on=<split> (numbers chosen on that split); '' keeps last.pth only"))
    log_every: int = field(default=1, metadata=_rt("iterations between CSV/TensorBoard rows"))
    seed: int = field(default=666, metadata=arg("seed of every random draw (data order, augmentation, sampling)"))
    resume: str = field(default="auto", metadata=_rt("checkpoint to resume from; 'auto': OUT_DIR/last.pth if it exists; 'no'"))
    resume_anyway: bool = field(default=False, metadata=_rt(
        "resume even if the configuration differs from the checkpoint's: continue with the checkpoint's "
        "values and list the flags ignored"))
    device: str = field(default="auto", metadata=_rt("'auto' (CUDA if available), 'cpu', 'cuda', 'cuda:1'"))
    amp: bool = field(default=True, metadata=arg("bf16 autocast on CUDA (on CPU only with --amp-cpu)"))
    amp_cpu: bool = field(default=False, metadata=arg("with --amp, also bf16 autocast on CPU (checks the mixed-precision path without a GPU; slower than fp32 on CPUs without bf16 units)"))
    num_workers: int = field(default=4, metadata=_rt("DataLoader worker processes per rank"))
    progress: bool = field(default=True, metadata=_rt("tqdm progress bar on rank 0"))
    deterministic: bool = field(default=False, metadata=_rt("deterministic kernels (slower on CUDA)"))


def runtime_fields(cls_or_cfg: Any) -> frozenset[str]:
    """Names of the fields that may differ on resume (``metadata["runtime"]``; see module doc)."""
    return frozenset(f.name for f in fields(cls_or_cfg) if f.metadata.get("runtime", False))
