"""Leaderboards rendered from result records (and nothing else).

``load(results_dir)`` returns a pandas DataFrame (one row per method x split); ``render_markdown``
turns it into one markdown table per split: methods as rows, metrics as columns with an arrow for
the better direction, values in percent, the best value per column in bold, the protocol named in
the heading, and results on synthetic data marked unmistakably.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from .results import Result, load_results

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


def to_frame(results: list[Result]) -> pd.DataFrame:
    rows = []
    for r in results:
        row = {
            "dataset": r.dataset,
            "benchmark": r.benchmark,
            "method": r.method,
            "protocol": r.protocol,
            "protocol_version": r.protocol_version,
            "synthetic": bool(r.synthetic),
            "source": r.notes.get("source", "ours") if isinstance(r.notes, dict) else "ours",
            "num_frames": r.num_frames,
            "plugin": f"{r.plugin.get('distribution', '')} {r.plugin.get('version', '')}".strip(),
            "checkpoint_sha256": r.checkpoint_sha256,
            "git_commit": r.git_commit,
        }
        for key in METRIC_COLUMNS:
            row[key] = r.metrics.get(key)
        rows.append(row)
    cols = ["dataset", "benchmark", "method", "protocol", "protocol_version", "synthetic", "source",
            "num_frames", *METRIC_COLUMNS, "plugin", "checkpoint_sha256", "git_commit"]
    return pd.DataFrame(rows, columns=cols)


def load(results_dir: str | os.PathLike = "leaderboard/results") -> pd.DataFrame:
    """All result records under ``results_dir`` as a DataFrame (metric values as fractions)."""
    return to_frame(load_results(results_dir))


def _fmt(value, percent: bool, bold: bool) -> str:
    if value is None or pd.isna(value):
        return "-"
    text = f"{100 * value:.2f}" if percent else f"{value:.4f}"
    return f"**{text}**" if bold else text


def render_markdown(df: pd.DataFrame, title: str = "oodbench leaderboard") -> str:
    """Markdown with one table per split."""
    if df.empty:
        return f"# {title}\n\n(no results)\n"
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
        protocols = sorted(set(sub["protocol"]))
        synthetic = bool(sub["synthetic"].any())
        heading = f"## {dataset}"
        if synthetic:
            heading += f" ({SYNTHETIC_MARK})"
        parts.append(heading)
        parts.append("")
        bench = sub["benchmark"].iloc[0]
        versions = sorted({f"{p} ({v})" for p, v in zip(sub["protocol"], sub["protocol_version"])})
        parts.append(f"Benchmark: {bench}. Protocol: {', '.join(versions)}.")
        parts.append("")
        metric_keys = [k for k in METRIC_COLUMNS if sub[k].notna().any()]
        best = {}
        for k in metric_keys:
            _, higher, _ = METRIC_COLUMNS[k]
            vals = sub[k].dropna()
            best[k] = vals.max() if higher else vals.min()
        headers = ["Method"] + [
            f"{METRIC_COLUMNS[k][0]} {'↑' if METRIC_COLUMNS[k][1] else '↓'}" for k in metric_keys
        ]
        if len(protocols) > 1:
            headers.insert(1, "Protocol")
        has_source = (sub["source"] != "ours").any()
        footnotes: dict[str, int] = {}
        if has_source:
            headers.insert(1, "Source")
        rows = []
        order = (sub.sort_values(metric_keys[0], ascending=not METRIC_COLUMNS[metric_keys[0]][1], na_position="last")
                 if metric_keys else sub)
        for _, r in order.iterrows():
            row = [r["method"]]
            if has_source:
                src = r["source"]
                if src == "ours":
                    row.append("ours")
                else:
                    n = footnotes.setdefault(src, len(footnotes) + 1)
                    row.append(f"published [{n}]")
            if len(protocols) > 1:
                row.append(r["protocol"])
            for k in metric_keys:
                v = r[k]
                row.append(_fmt(v, METRIC_COLUMNS[k][2], v is not None and not pd.isna(v) and v == best[k]))
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
    return "\n".join(parts)


def write_markdown(results_dir: str | os.PathLike, out: str | os.PathLike | None = None, **kw) -> str:
    text = render_markdown(load(results_dir), **kw)
    if out is not None:
        from .atomic import atomic_write_text

        atomic_write_text(Path(out), text)
    return text
