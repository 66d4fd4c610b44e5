"""Checkpoint selection on validation numbers, said out loud.

The released RPL code validated every 185 iterations on the labelled validation splits and the
authors picked the checkpoint they report from those runs (docs/rpl-official.md §6, ``docs/result.md``):
numbers *chosen* on an evaluation split. Here a selection rule ``SPLIT:METRIC`` keeps the
checkpoint of the best ``<SPLIT>/<METRIC>`` validation so far as ``best-<SPLIT>-<METRIC>.pth``,
and that file carries ``selected_on: SPLIT`` (and ``selection``: rule, value, iteration), which
the ``rpl`` method copies into every result record made from it, so a leaderboard can mark the
numbers selected on the split they are reported on.

Rules (``--select``): comma-separated ``SPLIT:METRIC``; ``*:METRIC`` expands to every split the
validator reports. Metrics and their direction: :data:`METRIC_DIRECTIONS`. NaN never wins; ties
keep the earlier checkpoint (as a ``>`` test on the stream of validations would).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping
from ..errors import UsageError

__all__ = ["METRIC_DIRECTIONS", "SelectionRule", "parse_rules", "BestTracker", "best_filename"]

#: metric -> True when higher is better
METRIC_DIRECTIONS: dict[str, bool] = {"auprc": True, "auroc": True, "fpr95": False, "miou": True}


@dataclass(frozen=True)
class SelectionRule:
    """``split`` (``*`` = every validated split) and ``metric``."""

    split: str
    metric: str

    @property
    def higher_is_better(self) -> bool:
        return METRIC_DIRECTIONS[self.metric]


def parse_rules(text: str | None) -> list[SelectionRule]:
    """``"*:auprc, fishyscapes-laf-val:fpr95"`` -> rules (``ValueError`` names ``--select``)."""
    rules: list[SelectionRule] = []
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        split, sep, metric = item.rpartition(":")
        if not sep or not split or metric not in METRIC_DIRECTIONS:
            raise UsageError(f"--select: {item!r} is not SPLIT:METRIC with METRIC one of "
                             f"{', '.join(METRIC_DIRECTIONS)} (SPLIT may be '*')")
        rule = SelectionRule(split.strip(), metric)
        if rule not in rules:
            rules.append(rule)
    return rules


def best_filename(split: str, metric: str) -> str:
    """``best-<split>-<metric>.pth``."""
    return f"best-{split}-{metric}.pth"


class BestTracker:
    """The best value per concrete ``(split, metric)`` seen so far; state survives resume."""

    def __init__(self, rules: list[SelectionRule]) -> None:
        self.rules = rules
        self.best: dict[str, dict[str, Any]] = {}  # "split:metric" -> {"value", "iteration"}

    def targets(self, val: Mapping[str, float]) -> list[tuple[str, str]]:
        """The concrete ``(split, metric)`` pairs the rules name in ``val`` (``ValueError`` for a named
        pair the validator does not report)."""
        out: list[tuple[str, str]] = []
        splits = sorted({k.rsplit("/", 1)[0] for k in val if "/" in k})
        for rule in self.rules:
            names = splits if rule.split == "*" else [rule.split]
            for split in names:
                if f"{split}/{rule.metric}" not in val:
                    raise UsageError(f"--select {rule.split}:{rule.metric}: validation reports no "
                                     f"'{split}/{rule.metric}' (it reports {', '.join(sorted(val)) or 'nothing'})")
                if (split, rule.metric) not in out:
                    out.append((split, rule.metric))
        return out

    def improved(self, val: Mapping[str, float], iteration: int) -> list[tuple[str, str, float]]:
        """Record ``val`` (one validation at ``iteration``); return the ``(split, metric, value)``
        whose best it improves."""
        won = []
        for split, metric in self.targets(val):
            value = float(val[f"{split}/{metric}"])
            if math.isnan(value):
                continue
            key = f"{split}:{metric}"
            old = self.best.get(key)
            better = old is None or (value > old["value"] if METRIC_DIRECTIONS[metric] else value < old["value"])
            if better:
                self.best[key] = {"value": value, "iteration": int(iteration)}
                won.append((split, metric, value))
        return won

    def state_dict(self) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in self.best.items()}

    def load_state_dict(self, state: Mapping[str, Mapping[str, Any]] | None) -> None:
        self.best = {k: {"value": float(v["value"]), "iteration": int(v["iteration"])} for k, v in (state or {}).items()}
