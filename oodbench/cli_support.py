"""Helpers shared by the command-line modules (:mod:`oodbench.cli` and the sub-command modules
:mod:`oodbench.compare`, :mod:`oodbench.fitting`, :mod:`oodbench.fishyscapes_submission`, ...).

They live below every command module, so no sub-command imports back into ``cli.py``. Nothing here
imports torch at module level (core commands must start without it).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from oodbench.errors import OodbenchError

__all__ = [
    "CLIError", "parse_params", "parse_method_params", "check_device", "want_progress",
    "write_json_records", "run_name", "positive_int", "resolve_splits_for_args", "method_kwargs", "build_method",
]


class CLIError(OodbenchError):
    """A user-facing error: printed without a traceback, exit status 2."""


# ---------------------------------------------------------------------------------------------
# helpers
def parse_params(items: Sequence[str] | None) -> dict[str, Any]:
    """``key=value`` pairs; values parsed as JSON when possible (numbers, booleans)."""
    out: dict[str, Any] = {}
    for item in items or ():
        if "=" not in item:
            raise CLIError(f"--param expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


def parse_method_params(method: str, items: Sequence[str] | None) -> dict[str, Any]:
    """``--param`` values for ``method``, refused (naming the parameters it takes) when it has no such one."""
    from oodbench.methods import METHODS

    params = parse_params(items)
    if params:
        accepted = METHODS.get(method).obj.accepted_params()
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise CLIError(f"--param {unknown[0]}: method {method!r} takes no parameter {unknown[0]!r}; "
                           f"its parameters: {', '.join(accepted) or '(none)'}")
    return params


def check_device(device: str) -> None:
    """Refuse a ``--device`` torch cannot parse or that this machine lacks (one line, before any work)."""
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise CLIError(f"--device {device}: not a device ({str(exc).splitlines()[0]})") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise CLIError(f"--device {device}: no CUDA device available here (torch.cuda.is_available() is "
                           "False); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise CLIError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here")


def want_progress(args: Any) -> bool:
    """Progress bars only when stderr is a terminal, unless ``--progress`` forces them; never with ``-q``
    (``args``: a parsed namespace or :class:`oodbench.cli_options.ProgressOptions`)."""
    if getattr(args, "quiet", False):
        return False
    return bool(getattr(args, "progress", False)) or sys.stderr.isatty()


def write_json_records(target: str, records: list[dict[str, Any]]) -> None:
    """``--json PATH|-``: always a JSON list of records (``-`` = stdout)."""
    if target == "-":
        sys.stdout.write(json.dumps(records, indent=2) + "\n")
        sys.stdout.flush()
    else:
        from oodbench.atomic import atomic_write_json

        atomic_write_json(target, records)


_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_+")


def run_name(text: str) -> str:
    """argparse type of ``--name``: a file-name-safe run name without ``__`` (the record file separator)."""
    if not text or not set(text) <= _NAME_CHARS or "__" in text or text.startswith("."):
        raise argparse.ArgumentTypeError(f"{text!r}: use letters, digits and . - _ + (no '__', no leading '.')")
    return text


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def resolve_splits_for_args(args: Any, names: Sequence[str], labelled_only: bool = True) -> list:
    """The splits for ``--dataset`` values (:func:`oodbench.datasets.resolve_splits`); ``args``: a
    parsed namespace or :class:`oodbench.cli_options.DataOptions`. Prints the splits ``all``
    skipped, one line each, on stderr."""
    from oodbench.datasets import resolve_splits

    splits, skipped = resolve_splits(names, args.data_root, check_count=not args.no_count_check,
                                     labelled_only=labelled_only, layout=args.layout)
    for split_name, reason in sorted(skipped.items()):
        print(f"oodbench: skipping {split_name}: {reason.splitlines()[0]}", file=sys.stderr)
    return splits


def method_kwargs(args: Any) -> dict[str, Any]:
    """Constructor arguments of ``--method`` from ``--param``/``--checkpoint``/``--segmenter`` (one rule
    for ``run``, ``fit`` and ``fishyscapes-predict``; ``args``: a parsed namespace or
    :class:`oodbench.cli_options.MethodOptions`): unknown parameters and a missing checkpoint file
    are one-line errors before anything is built."""
    from pathlib import Path

    kwargs = parse_method_params(args.method, getattr(args, "param", None))
    checkpoint = getattr(args, "checkpoint", None)
    if checkpoint:
        if not Path(checkpoint).is_file():
            raise CLIError(f"--checkpoint {checkpoint}: no such file")
        kwargs["checkpoint"] = checkpoint
    if getattr(args, "segmenter", None):
        kwargs["segmenter"] = args.segmenter
    return kwargs


def build_method(name: str, kwargs: dict[str, Any]):
    """The method, or one line naming what its constructor refused (never a traceback)."""
    from oodbench.methods import build
    from oodbench.registry import RegistryError

    try:
        return build(name, **kwargs)
    except RegistryError:
        raise
    except Exception as exc:  # a plugin constructor or a checkpoint that does not fit
        first = (str(exc).strip().splitlines() or [""])[0]
        raise CLIError(f"--method {name}: could not build it: {type(exc).__name__}: {first}") from None
