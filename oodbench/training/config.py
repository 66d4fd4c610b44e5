"""Training configs as dataclasses, and their command-line flags generated from the fields.

Every field becomes ``--field-name`` with the field's type, default and ``metadata["help"]``;
booleans get ``--x/--no-x``; ``metadata["choices"]`` restricts values; ``metadata["parse"]`` is a
custom argparse type (e.g. :func:`int_or_all`); ``metadata["cli"] = False`` keeps a field (e.g. a
Python callback) off the command line. With ``suppress_defaults`` an absent flag leaves no
attribute on the namespace, so a caller can tell the flags given from the defaults (recipes and
config files fill the rest, :mod:`oodbench.methods.rpl.recipes`). One definition therefore serves the
Python API (``train_rpl(RPLTrainConfig(...))``), the CLI and the config stored in checkpoints.

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
import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["EngineConfig", "add_dataclass_arguments", "config_from_namespace", "config_to_dict", "int_or_all",
           "runtime_fields"]


def _h(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


def _rt(text: str, **extra: Any) -> dict[str, Any]:
    """Metadata of a runtime field (may differ on resume; see module doc)."""
    return {"help": text, "runtime": True, **extra}


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
    epochs: int = field(default=40, metadata=_h("number of epochs"))
    max_iters: int | None = field(default=None, metadata=_h("cap on the total number of iterations (also the poly horizon)"))
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
    seed: int = field(default=666, metadata=_h("seed of every random draw (data order, augmentation, sampling)"))
    resume: str = field(default="auto", metadata=_rt("checkpoint to resume from; 'auto': OUT_DIR/last.pth if it exists; 'no'"))
    resume_anyway: bool = field(default=False, metadata=_rt(
        "resume even if the configuration differs from the checkpoint's: continue with the checkpoint's "
        "values and list the flags ignored"))
    device: str = field(default="auto", metadata=_rt("'auto' (CUDA if available), 'cpu', 'cuda', 'cuda:1'"))
    amp: bool = field(default=True, metadata=_h("bf16 autocast on CUDA (on CPU only with --amp-cpu)"))
    amp_cpu: bool = field(default=False, metadata=_h("with --amp, also bf16 autocast on CPU (checks the mixed-precision path without a GPU; slower than fp32 on CPUs without bf16 units)"))
    num_workers: int = field(default=4, metadata=_rt("DataLoader worker processes per rank"))
    progress: bool = field(default=True, metadata=_rt("tqdm progress bar on rank 0"))
    deterministic: bool = field(default=False, metadata=_rt("deterministic kernels (slower on CUDA)"))


def runtime_fields(cls_or_cfg: Any) -> frozenset[str]:
    """Names of the fields that may differ on resume (``metadata["runtime"]``; see module doc)."""
    return frozenset(f.name for f in fields(cls_or_cfg) if f.metadata.get("runtime", False))


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, exclude: tuple[str, ...] = (),
                            suppress_defaults: bool = False) -> None:
    """Add one flag per field of dataclass ``cls`` (see module doc).

    ``suppress_defaults``: absent flags set nothing (the help still shows the field default).
    """
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if f.name in exclude or not f.metadata.get("cli", True):
            continue
        flag = "--" + f.name.replace("_", "-")
        tp, optional = _unwrap_optional(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        kw: dict[str, Any] = {"dest": f.name, "default": default}
        help_text = f.metadata.get("help", "")
        kw["help"] = f"{help_text} (default: {default!r})" if help_text else f"default: {default!r}"
        if "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]
        origin = typing.get_origin(tp)
        if "parse" in f.metadata:
            kw["type"] = f.metadata["parse"]
        elif tp is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif origin in (tuple, list):
            inner = [a for a in typing.get_args(tp) if a is not Ellipsis]
            kw["type"] = inner[0] if inner else str
            kw["nargs"] = len(inner) if origin is tuple and Ellipsis not in typing.get_args(tp) else "+"
        elif tp in (int, float, str):
            kw["type"] = tp
        elif tp is Path:
            kw["type"] = Path
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: no CLI mapping for type {tp!r} (set metadata cli=False)")
        if optional and tp is not bool and "parse" not in f.metadata:
            kw["help"] += "; omit for none"
        if suppress_defaults:
            kw["default"] = argparse.SUPPRESS
        parser.add_argument(flag, **kw)


def config_from_namespace(cls: type, ns: argparse.Namespace, **overrides: Any):
    """Build ``cls`` from parsed arguments (fields absent from ``ns`` keep their defaults)."""
    kwargs = {f.name: getattr(ns, f.name) for f in fields(cls) if hasattr(ns, f.name)}
    for f in fields(cls):
        v = kwargs.get(f.name)
        if isinstance(v, list) and typing.get_origin(typing.get_type_hints(cls)[f.name]) is tuple:
            kwargs[f.name] = tuple(v)
    kwargs.update(overrides)
    return cls(**kwargs)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """JSON/``weights_only``-safe dict of a config (paths as strings, tuples as lists, callables dropped)."""
    out: dict[str, Any] = {}
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        if callable(v) and not isinstance(v, type):
            continue
        if isinstance(v, Path):
            v = str(v)
        elif isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out
