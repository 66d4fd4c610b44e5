"""Leaderboards rendered from result records (and nothing else).

``load(results_dir)`` returns a pandas DataFrame (one row per record: method x split x protocol);
``render_markdown`` turns it into markdown: one section per split, and in it one table per
(protocol, FPR95 rule) -- numbers of different protocols are never in one table, and the best value
per column (in bold) is chosen within one protocol, among trained rows. Methods are rows, metrics
columns with an arrow for the better direction, values in percent; results on synthetic data and
rows scored with untrained weights (``--allow-untrained``) are marked unmistakably.
"""
from __future__ import annotations

import os

import pandas as pd
from tabulate import tabulate

from .results import Result, default_fpr_rule, load_results

__all__ = ["METRIC_COLUMNS", "load", "to_frame", "render_markdown"]

#: metric key -> (column title, higher is better, shown in percent)
METRIC_COLUMNS: dict[str, tuple[str, bool, bool]] = {
    "auprc": ("AuPRC", True, True),
    "auroc": ("AuROC", True, True),
    "fpr95": ("FPR95", False, True),
    "siou": ("sIoU", True, True),
    "ppv": ("PPV", True, True),
    "f1_mean": ("mean F1", True, True),
    "open_miou": ("open-mIoU", True, True),
    "closed_miou": ("mIoU", True, True),
}

SYNTHETIC_MARK = "SYNTHETIC DATA"
UNTRAINED_MARK = "(untrained)"
UNTRAINED_NOTE = (f"{UNTRAINED_MARK}: scored with random or unfitted weights (`--allow-untrained`); "
                  "not a result of the method, never in bold.")


def to_frame(results: list[Result]) -> pd.DataFrame:
    rows = []
    for r in results:
        row = {
            "dataset": r.dataset,
            "benchmark": r.benchmark,
            "method": r.run_name,  # the run name (``--name``), the registry name without one
            "registered_method": r.method,
            "protocol": r.protocol,
            "protocol_version": r.protocol_version,
            "fpr_rule": r.effective_fpr_rule,
            "synthetic": bool(r.synthetic),
            "untrained": bool(r.untrained),
            "selected_on": r.selected_on or "",
            "source": r.notes.get("source", "ours") if isinstance(r.notes, dict) else "ours",
            "num_frames": r.num_frames,
            "plugin": f"{r.plugin.get('distribution', '')} {r.plugin.get('version', '')}".strip(),
            "checkpoint_sha256": r.checkpoint_sha256,
            "git_commit": r.git_commit,
        }
        for key in METRIC_COLUMNS:
            row[key] = r.metrics.get(key)
        rows.append(row)
    cols = ["dataset", "benchmark", "method", "registered_method", "protocol", "protocol_version", "fpr_rule",
            "synthetic", "untrained", "selected_on", "source",
            "num_frames", *METRIC_COLUMNS, "plugin", "checkpoint_sha256", "git_commit"]
    return pd.DataFrame(rows, columns=cols)


def load(results_dir: str | os.PathLike = "leaderboard/results") -> pd.DataFrame:
    """The records ``results_dir`` holds (validated, see :func:`~oodbench.results.load_results`) as a
    DataFrame (metric values as fractions)."""
    return to_frame(load_results(results_dir))


def _fmt(value, percent: bool, bold: bool) -> str:
    if value is None or pd.isna(value):
        return "-"
    text = f"{100 * value:.2f}" if percent else f"{value:.4f}"
    return f"**{text}**" if bold else text


def render_markdown(df: pd.DataFrame, title: str = "oodbench leaderboard") -> str:
    """Markdown with one section per split and one table per (protocol, FPR95 rule) in it."""
    if df.empty:
        return f"# {title}\n\n(no results)\n"
    df = df.copy()
    for col, default in (("fpr_rule", ""), ("untrained", False), ("source", "ours"), ("selected_on", "")):
        df[col] = df[col].fillna(default) if col in df else default
    parts = [f"# {title}", ""]
    if df["synthetic"].any():
        parts += [
            f"> **{SYNTHETIC_MARK}**: tables marked with this were computed on oodbench's synthetic "
            "benchmark (`oodbench synth`). They test the pipeline; they are not comparable with "
            "published numbers.",
            "",
        ]
    parts.append("Values in %. ↑ higher is better, ↓ lower is better; best per column in bold.")
    parts.append("")
    for dataset, sub in df.groupby("dataset", sort=True):
        synthetic = bool(sub["synthetic"].any())
        heading = f"## {dataset}"
        if synthetic:
            heading += f" ({SYNTHETIC_MARK})"
        parts.append(heading)
        parts.append("")
        groups = list(sub.groupby(["protocol", "fpr_rule"], sort=True))
        for (protocol, rule), table in groups:
            own_rule = default_fpr_rule(protocol)
            rule_text = f", FPR95 rule {rule}" if rule and own_rule is not None and rule != own_rule else ""
            if len(groups) > 1:
                parts.append(f"### Protocol {protocol}{rule_text}")
                parts.append("")
            parts += _table(table, rule_text, synthetic)
    return "\n".join(parts)


def _table(sub: pd.DataFrame, rule_text: str, synthetic: bool) -> list[str]:
    """The lines of one table: rows of one split under one protocol and FPR95 rule."""
    parts = []
    bench = sub["benchmark"].iloc[0]
    protocol = sub["protocol"].iloc[0]
    versions = sorted(set(sub["protocol_version"]))
    parts.append(f"Benchmark: {bench}. Protocol: {protocol} ({', '.join(versions)}){rule_text}.")
    parts.append("")
    metric_keys = [k for k in METRIC_COLUMNS if sub[k].notna().any()]
    trained = sub[~sub["untrained"].astype(bool)]
    best = {}
    for k in metric_keys:
        _, higher, _ = METRIC_COLUMNS[k]
        vals = trained[k].dropna()
        best[k] = (vals.max() if higher else vals.min()) if len(vals) else None
    headers = ["Method"] + [
        f"{METRIC_COLUMNS[k][0]} {'↑' if METRIC_COLUMNS[k][1] else '↓'}" for k in metric_keys
    ]
    has_source = (sub["source"] != "ours").any()
    footnotes: dict[str, int] = {}
    if has_source:
        headers.insert(1, "Source")
    rows = []
    order = (sub.sort_values(metric_keys[0], ascending=not METRIC_COLUMNS[metric_keys[0]][1], na_position="last")
             if metric_keys else sub)
    for _, r in order.iterrows():
        untrained = bool(r["untrained"])
        row = [f"{r['method']} {UNTRAINED_MARK}" if untrained else r["method"]]
        if r["selected_on"]:  # numbers of a checkpoint chosen on a validation split (this one, or another)
            row[0] += (" (checkpoint selected on this split)" if r["selected_on"] == r["dataset"]
                       else f" (checkpoint selected on {r['selected_on']})")
        if has_source:
            src = r["source"]
            if src == "ours":
                row.append("ours")
            else:
                n = footnotes.setdefault(src, len(footnotes) + 1)
                row.append(f"published [{n}]")
        for k in metric_keys:
            v = r[k]
            is_best = not untrained and best[k] is not None and v is not None and not pd.isna(v) and v == best[k]
            row.append(_fmt(v, METRIC_COLUMNS[k][2], is_best))
        rows.append(row)
    parts.append(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))
    parts.append("")
    for src, n in footnotes.items():
        parts.append(f"[{n}] {src}  ")
    if footnotes:
        parts.append("")
        if synthetic:
            parts.append("Published rows are real-data numbers; ours here are synthetic: do not compare.")
            parts.append("")
    if sub["untrained"].astype(bool).any():
        parts.append(UNTRAINED_NOTE)
        parts.append("")
    return parts

