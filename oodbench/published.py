"""Published numbers (official SMIYC leaderboard, papers, authors' repositories) beside ours.

The data file ``oodbench/data/published.json`` holds facts typed from their sources, each entry
with its source and the protocol the publishers used. :func:`merge_published` appends them to a
leaderboard DataFrame with ``source`` set, so rendered tables show which rows are ours.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import pandas as pd

from .leaderboard import METRIC_COLUMNS, to_frame
from .results import Result, default_fpr_rule

__all__ = ["load_published", "published_records", "published_frame", "merge_published"]


@lru_cache(maxsize=1)
def load_published() -> dict:
    """The parsed data file (``{"version", "description", "entries": [...]}``)."""
    text = resources.files("oodbench").joinpath("data/published.json").read_text(encoding="utf-8")
    return json.loads(text)


def published_records() -> list[Result]:
    """The published numbers as result records (the leaderboard's one input type).

    ``protocol_version`` is ``"published"``, the rule is the protocol's own (the publishers' official
    protocols fix it), ``notes["source"]`` names the publication, and ``num_frames`` is ``None``
    (not reported). Nothing is stamped: these records were not computed here.
    """
    out = []
    for e in load_published()["entries"]:
        out.append(Result(
            method=e["method"], dataset=e["dataset"], benchmark=e["benchmark"], protocol=e["protocol"],
            protocol_version="published", fpr_rule=default_fpr_rule(e["protocol"]),
            metrics={k: v for k, v in e["metrics"].items() if k in METRIC_COLUMNS},
            num_frames=None, synthetic=False, notes={"source": e["source"]},
        ))
    return out


def published_frame() -> pd.DataFrame:
    """:func:`published_records` through the leaderboard's :func:`~oodbench.leaderboard.to_frame`, one
    row per entry (a board may list one method twice, e.g. with and without OoD training data)."""
    return pd.concat([to_frame([r]) for r in published_records()], ignore_index=True)


def merge_published(df: pd.DataFrame, datasets: list[str] | None = None) -> pd.DataFrame:
    """``df`` plus the published rows (all, or those of ``datasets``), ours marked ``source='ours'``."""
    pub = published_frame()
    if datasets is not None:
        pub = pub[pub["dataset"].isin(datasets)]
    out = pd.concat([df.assign(source=df.get("source", "ours")), pub], ignore_index=True)
    return out
