"""``--seeds S1 S2 ...`` for the train commands: one training run per seed, one after the other.

Each run is the single-seed command with ``seed`` replaced and ``out_dir`` set to
``<out_dir>/seed-<S>/``, so every run resumes on its own and its checkpoint records its seed
(``config.seed``), which result records carry as ``training_seed``; leaderboards then show records
that differ only in it as ``mean ± std`` over seeds (:mod:`oodbench.leaderboard`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..cli_config import arg
from ..errors import UsageError

__all__ = ["SeedsOptions", "seed_configs", "run_seeds"]


@dataclass
class SeedsOptions:
    """``--seeds S1 S2 ...`` of the train commands (a generated option group)."""

    seeds: list[int] | None = field(default=None, metadata=arg(
        "train once per seed, sequentially, into <out-dir>/seed-<S>/ (replaces --seed)", metavar="S"))


def seed_configs(cfg: Any, seeds: Sequence[int]) -> Iterator[Any]:
    """``cfg`` once per seed: ``seed`` replaced, ``out_dir`` = ``<out_dir>/seed-<S>``.

    Raises:
        ValueError: a seed given twice (two runs would share one folder).
    """
    seeds = [int(s) for s in seeds]
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise UsageError(f"--seeds: seed(s) {twice} given more than once")
    for s in seeds:
        yield dataclasses.replace(cfg, seed=s, out_dir=str(Path(cfg.out_dir) / f"seed-{s}"))


def run_seeds(cfg: Any, seeds: Sequence[int], train: Callable[[Any], Any]) -> list[Any]:
    """``train`` each of :func:`seed_configs` in turn; returns their results."""
    return [train(c) for c in seed_configs(cfg, seeds)]
