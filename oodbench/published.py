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

from .leaderboard import METRIC_COLUMNS
from .results import default_fpr_rule

__all__ = ["load_published", "published_frame", "merge_published"]


@lru_cache(maxsize=1)
def load_published() -> dict:
    """The parsed data file (``{"version", "description", "entries": [...]}``)."""
    text = resources.files("oodbench").joinpath("data/published.json").read_text(encoding="utf-8")
    return json.loads(text)


def published_frame() -> pd.DataFrame:
    rows = []
    for e in load_published()["entries"]:
        row = {
            "dataset": e["dataset"], "benchmark": e["benchmark"], "method": e["method"],
            "protocol": e["protocol"], "protocol_version": "published",
            # the publishers' protocol fixes the rule (official ones); they share our tables by it
            "fpr_rule": default_fpr_rule(e["protocol"]) or "", "synthetic": False, "untrained": False,
            "source": e["source"], "num_frames": None, "plugin": "", "checkpoint_sha256": None,
            "git_commit": None,
        }
        for key in METRIC_COLUMNS:
            row[key] = e["metrics"].get(key)
        rows.append(row)
    return pd.DataFrame(rows)


def merge_published(df: pd.DataFrame, datasets: list[str] | None = None) -> pd.DataFrame:
    """``df`` plus the published rows (all, or those of ``datasets``), ours marked ``source='ours'``."""
    pub = published_frame()
    if datasets is not None:
        pub = pub[pub["dataset"].isin(datasets)]
    out = pd.concat([df.assign(source=df.get("source", "ours")), pub], ignore_index=True)
    return out
