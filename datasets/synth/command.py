"""CLI hooks of the data-preparation commands (wired by ``oodbench/cli.py``):

* ``oodbench synth --out DIR [--seed S]`` (:func:`add_synth_parser`, here);
* ``oodbench prepare coco-ood`` (:func:`add_prepare_parser`, from :mod:`oodbench.datasets.coco`);
* ``oodbench download DATASET`` (:func:`add_download_parser`, from :mod:`oodbench.datasets.download`).

Each ``add_*_parser(subparsers)`` sets ``func`` on its parser: ``args.func(args) -> exit code``.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

from oodbench.cli_config import add_command, arg

from ..coco import add_prepare_parser, run_prepare
from ..download import add_download_parser, run_download
from .extra import EXTRA_SETS, parse_extra
from .generate import OFFICIAL_VALIDATION_SIZES, SIZED_SPLITS, SynthExistsError, generate

__all__ = ["SynthConfig", "add_synth_parser", "run_synth", "add_prepare_parser", "run_prepare", "add_download_parser",
           "run_download"]


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 128x256, got {text!r}") from None
    return h, w


def _split_size(text: str) -> tuple[str, int]:
    name, sep, n = text.partition("=")
    if not sep or name not in SIZED_SPLITS or not n.isdigit() or int(n) < 1:
        raise argparse.ArgumentTypeError(
            f"expected SPLIT=N with SPLIT one of {', '.join(SIZED_SPLITS)} and N >= 1, got {text!r}")
    return name, int(n)


@dataclass(kw_only=True)
class SynthConfig:
    """``oodbench synth`` (the parser is generated from it; :func:`run_synth` reads the same names)."""

    out: str = field(metadata=arg("data root to create"))
    seed: int = field(default=0, metadata=arg("non-negative seed (default 0)"))
    size: tuple[int, int] = field(default=(128, 256), metadata=arg("HxW of the 2:1 frames (default 128x256)",
                                                                   parse=_size))
    official_sizes: bool = field(default=False, metadata=arg(
        "validation splits with the released frame counts: "
        + ", ".join(f"{k} {v}" for k, v in OFFICIAL_VALIDATION_SIZES.items()) + " (default: 8 each)",
        action="store_true"))
    frames: list[tuple[str, int]] = field(default_factory=list, metadata=arg(
        f"frame count of one split (repeatable; {', '.join(SIZED_SPLITS)}; StreetHazards per town)",
        parse=_split_size, action="append", metavar="SPLIT=N"))
    extra: str = field(default="", metadata=arg(
        f"comma-separated extra training sets in their official layouts: {', '.join(EXTRA_SETS)} "
        "(Mapillary Vistas under vistas/, WildDash 2 under wd_public_02/; default: none)", metavar="SETS"))
    force: bool = field(default=False, metadata=arg("replace an existing synthetic tree of another seed/size",
                                                    action="store_true"))


def add_synth_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``synth`` on an ``argparse`` sub-parser collection; the handler is ``args.func``."""
    return add_command(
        subparsers, "synth", SynthConfig, run_synth,
        help="write a small deterministic synthetic benchmark in the official layouts",
        description="Write a synthetic urban world: a Cityscapes-format training set, a COCO-format "
                    "outlier source and every evaluation split in its official layout, plus "
                    "oodbench_manifest.json (frame counts). Same seed -> same bytes.")


def run_synth(args: argparse.Namespace) -> int:
    """Handler of ``oodbench synth``; returns the exit code."""
    if args.seed < 0:
        print("error: --seed must be >= 0", file=sys.stderr)
        return 2
    try:
        extra = parse_extra(getattr(args, "extra", ""))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        sizes = {**(OFFICIAL_VALIDATION_SIZES if args.official_sizes else {}), **dict(args.frames)}
        out = generate(args.out, seed=args.seed, size=args.size, split_sizes=sizes, extra=extra, force=args.force,
                       log=print)
    except (SynthExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"synthetic benchmark ready: {out} (use --data-root {out} or OODBENCH_DATA={out})")
    return 0
