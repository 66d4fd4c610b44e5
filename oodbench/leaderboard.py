"""Leaderboards rendered from result records (and nothing else).

``load(results_dir)`` returns a pandas DataFrame (one row per record: method x split x protocol);
``render_markdown`` turns it into markdown: one section per split, and in it one table per
(protocol, FPR95 rule) -- numbers of different protocols are never in one table, and the best value
per column (in bold) is chosen within one protocol, among trained rows. Methods are rows, metrics
columns with an arrow for the better direction, values in percent; results on synthetic data, rows
scored with untrained weights (``--allow-untrained``) and rows of a split copy with another frame count
than the complete split (``--no-count-check``; ``40 of 100 frames``) and records changed after oodbench
wrote them (``(edited)``: their ``digest`` no longer matches) are marked unmistakably and never bold.
When rows of one table were evaluated on different data (their ``data_fingerprint``s differ: another
dataset version, another synthetic benchmark) each row is tagged ``[data k]`` and nothing is bold.

Uncertainty (issue #15): records that differ only in the training seed (same method, split,
protocol, FPR95 rule and hyperparameters; their checkpoints differ) become one row, ``mean ± std``
over the seeds with the number of seeds shown. ``render_markdown(..., ci=True)`` (``oodbench
leaderboard --ci``) shows each record's frame-bootstrap interval, ``59.8 [57.5, 62.0]``, and bolds
the best value of a column only when its interval (``mean ± std`` for seed rows, the value itself
where there is none) does not overlap the runner-up's; each table says what its intervals are.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Sequence

import pandas as pd
from tabulate import tabulate

from .results import RecordError, Result, default_fpr_rule, load_results

__all__ = ["METRIC_COLUMNS", "load", "to_frame", "render_markdown", "aggregate_seeds", "off_count_mark"]

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
EDITED_MARK = "(edited)"
EDITED_NOTE = (f"{EDITED_MARK}: the record's content no longer matches the digest oodbench wrote with it: changed "
               "by hand or by another tool after it was written; not a measured number, never in bold.")
DATA_TAG_NOTE = ("[data k]: the rows of this table were evaluated on {n} different sets of frames or labels (their "
                 "`data_fingerprint`s differ: another dataset version, or another synthetic benchmark); only rows "
                 "with the same tag are comparable, so no value is bold.")
OFF_COUNT_NOTE = ("(n of m frames): evaluated on a copy of the split with another frame count than the complete "
                  "split (`--no-count-check`); not the benchmark's number, never in bold.")


def off_count_mark(num_frames: int, expected_frames: int | None) -> str:
    """``"(40 of 100 frames)"`` for a record of a partial or altered split copy, else ``""``."""
    if expected_frames is None or pd.isna(expected_frames) or int(num_frames) == int(expected_frames):
        return ""
    return f"({int(num_frames)} of {int(expected_frames)} frames)"


def _seed_key(r: Result) -> tuple:
    return (*r.identity, json.dumps(r.hparams, sort_keys=True, default=str), bool(r.synthetic),
            bool(r.untrained), r.num_frames, r.expected_frames, r.edited, r.data_fingerprint)


def aggregate_seeds(results: Sequence[Result]) -> list[tuple[Result, list[Result]]]:
    """``(representative, records)`` per leaderboard row: records of one identity that differ only in
    ``training_seed`` form one row (the representative is the first; ``records`` are all of them).

    Raises:
        RecordError: records of one identity that are not distinct training seeds of one configuration.
    """
    groups: dict[tuple, list[Result]] = {}
    for r in results:
        # rows of different sources (ours, each publication) never merge
        source = r.notes.get("source", "ours") if isinstance(r.notes, dict) else "ours"
        groups.setdefault((*r.identity, source), []).append(r)
    out = []
    for identity, recs in groups.items():
        if len(recs) > 1:
            seeds = [r.training_seed for r in recs]
            if None in seeds or len(set(seeds)) != len(seeds) or len({_seed_key(r) for r in recs}) != 1:
                raise RecordError(
                    f"{len(recs)} records of (method, dataset, protocol, FPR95 rule) = {identity[:-1]} differ in more "
                    f"than the training seed (seeds {seeds}); only runs of one configuration with distinct "
                    "training seeds are averaged -- keep one record per configuration")
            recs = sorted(recs, key=lambda r: r.training_seed)
        out.append((recs[0], recs))
    return out


def to_frame(results: list[Result]) -> pd.DataFrame:
    """One row per record, or per group of records that differ only in the training seed
    (:func:`aggregate_seeds`: metrics are the mean, ``<metric>_std`` the sample std, ``n_seeds``)."""
    rows = []
    for r, recs in aggregate_seeds(results):
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
            "edited": any(x.edited for x in recs),
            "selected_on": r.selected_on or "",
            "source": r.notes.get("source", "ours") if isinstance(r.notes, dict) else "ours",
            "num_frames": r.num_frames,
            "expected_frames": r.expected_frames,
            "data_fingerprint": r.data_fingerprint,
            "plugin": f"{r.plugin.get('distribution', '')} {r.plugin.get('version', '')}".strip(),
            "checkpoint_sha256": r.checkpoint_sha256,
            "git_commit": r.git_commit,
        }
        row.update(training_seed=r.training_seed, n_seeds=len(recs), ci=None, ci_spec=None)
        if len(recs) > 1:
            row.update(checkpoint_sha256=None, training_seed=None)
        elif r.ci:
            row.update(ci={k: tuple(v) for k, v in r.ci.items()}, ci_spec=dict(r.bootstrap or {}))
        for key in METRIC_COLUMNS:
            vals = [x.metrics.get(key) for x in recs]
            vals = [float(v) for v in vals if v is not None and not (isinstance(v, float) and math.isnan(v))]
            if len(recs) == 1:
                row[key] = r.metrics.get(key)
            else:
                row[key] = sum(vals) / len(vals) if vals else None
                row[f"{key}_std"] = (math.sqrt(sum((v - row[key]) ** 2 for v in vals) / (len(vals) - 1))
                                     if len(vals) > 1 else None)
        rows.append(row)
    cols = ["dataset", "benchmark", "method", "registered_method", "protocol", "protocol_version", "fpr_rule",
            "synthetic", "untrained", "edited", "selected_on", "source",
            "num_frames", "expected_frames", "data_fingerprint", *METRIC_COLUMNS, "plugin", "checkpoint_sha256", "git_commit",
            "training_seed", "n_seeds", "ci", "ci_spec", *(f"{k}_std" for k in METRIC_COLUMNS)]
    return pd.DataFrame(rows, columns=cols)


def load(results_dir: str | os.PathLike | Sequence[str | os.PathLike] = "leaderboard/results") -> pd.DataFrame:
    """The records ``results_dir`` holds (validated, see :func:`~oodbench.results.load_results`) as a
    DataFrame (metric values as fractions). Several folders (e.g. one per training seed) are read
    together; records that differ only in the training seed are averaged (:func:`to_frame`)."""
    dirs = [results_dir] if isinstance(results_dir, (str, os.PathLike)) else list(results_dir)
    return to_frame([r for d in dirs for r in load_results(d)])


def _fmt(value, percent: bool, bold: bool) -> str:
    if value is None or pd.isna(value):
        return "-"
    text = f"{100 * value:.2f}" if percent else f"{value:.4f}"
    return f"**{text}**" if bold else text


def _interval(r: Any, key: str) -> tuple[float, float] | None:
    """The row's interval of ``key`` as fractions: ``mean ± std`` for a seed aggregate, else the
    bootstrap interval (when it has both ends), else ``None``."""
    if _n_seeds(r) > 1:
        v, sd = r[key], r.get(f"{key}_std")
        if v is None or pd.isna(v) or sd is None or pd.isna(sd):
            return None
        return (float(v) - float(sd), float(v) + float(sd))
    ci = r.get("ci")
    if isinstance(ci, dict) and ci.get(key) is not None:
        lo, hi = ci[key]
        if lo is not None and hi is not None:
            return (float(lo), float(hi))
    return None


def _n_seeds(r: Any) -> int:
    n = r.get("n_seeds")
    return 1 if n is None or pd.isna(n) else int(n)


def _cell(r: Any, key: str, ci: bool, bold: bool) -> str:
    """A value cell: ``59.80`` (default), ``59.8 [57.5, 62.0]`` (``ci``), ``59.80 ± 2.10`` (seeds)."""
    v = r[key]
    percent = METRIC_COLUMNS[key][2]
    if _n_seeds(r) <= 1 and not ci:
        return _fmt(v, percent, bold)
    if v is None or pd.isna(v):
        return "-"
    scale, digits = (100.0 if percent else 1.0), (1 if ci else 2) + (0 if percent else 2)
    text = f"{scale * v:.{digits}f}"
    if _n_seeds(r) > 1:
        sd = r.get(f"{key}_std")
        if sd is not None and not pd.isna(sd):
            text += f" ± {scale * sd:.{digits}f}"
    elif ci:
        iv = _interval(r, key)
        if iv is not None:
            text += f" [{scale * iv[0]:.{digits}f}, {scale * iv[1]:.{digits}f}]"
    return f"**{text}**" if bold else text


def _best_rows(trained: pd.DataFrame, key: str, ci: bool) -> set:
    """Index labels of the rows shown bold in column ``key``: the best value(s); with ``ci`` only
    when the best row's interval does not overlap the runner-up's (a row without an interval
    counts as the point interval of its value)."""
    _, higher, _ = METRIC_COLUMNS[key]
    vals = trained[key].dropna()
    if not len(vals):
        return set()
    best = vals.max() if higher else vals.min()
    top = set(vals.index[vals == best])
    if not ci:
        return top
    if len(top) > 1:
        return set()  # a tie overlaps by definition
    if len(vals) == 1:
        return top
    (i,) = top
    rest = vals.drop(i)
    j = rest.idxmax() if higher else rest.idxmin()

    def span(idx) -> tuple[float, float]:
        iv = _interval(trained.loc[idx], key)
        return iv if iv is not None else (float(vals[idx]), float(vals[idx]))

    (blo, bhi), (rlo, rhi) = span(i), span(j)
    apart = blo > rhi if higher else bhi < rlo
    return top if apart else set()


def _ci_text(sub: pd.DataFrame, ci: bool) -> str:
    """What the intervals of one table are (empty when it shows none)."""
    parts = []
    if ci and "ci_spec" in sub:
        specs = {json.dumps({k: s.get(k) for k in ("n", "level", "seed", "method", "unit")}, sort_keys=True)
                 for s in sub["ci_spec"] if isinstance(s, dict) and s}
        for text in sorted(specs):
            s = json.loads(text)
            parts.append(f"[lo, hi] = {100 * s['level']:g} % {s.get('unit') or 'frame'} bootstrap "
                         f"{s.get('method') or 'percentile'} interval ({s['n']} replicates, seed {s['seed']})")
    if "n_seeds" in sub and (sub["n_seeds"].fillna(1) > 1).any():
        parts.append("± = std over training seeds (sample std; n seeds after the method name)")
    if not parts:
        return ""
    bold = " Bold only where the best interval does not overlap the runner-up's." if ci else ""
    return "Intervals: " + "; ".join(parts) + "." + bold


def render_markdown(df: pd.DataFrame, title: str = "oodbench leaderboard", ci: bool = False) -> str:
    """Markdown with one section per split and one table per (protocol, FPR95 rule) in it.

    ``ci``: show the records' bootstrap intervals and bold only non-overlapping bests (see module).
    """
    if df.empty:
        return f"# {title}\n\n(no results)\n"
    df = df.copy()
    for col, default in (("fpr_rule", ""), ("untrained", False), ("edited", False), ("source", "ours"),
                         ("selected_on", "")):
        df[col] = df[col].fillna(default) if col in df else default
    if "expected_frames" not in df:
        df["expected_frames"] = None
    df["data_fingerprint"] = df["data_fingerprint"].fillna("") if "data_fingerprint" in df else ""
    df["off_count"] = [off_count_mark(n, e) for n, e in zip(df["num_frames"], df["expected_frames"])]
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
            parts += _table(table, rule_text, synthetic, ci)
    return "\n".join(parts)


def _table(sub: pd.DataFrame, rule_text: str, synthetic: bool, ci: bool = False) -> list[str]:
    """The lines of one table: rows of one split under one protocol and FPR95 rule."""
    parts = []
    bench = sub["benchmark"].iloc[0]
    protocol = sub["protocol"].iloc[0]
    versions = sorted(set(sub["protocol_version"]))
    intervals = _ci_text(sub, ci)
    parts.append(f"Benchmark: {bench}. Protocol: {protocol} ({', '.join(versions)}){rule_text}."
                 + (f" {intervals}" if intervals else ""))
    parts.append("")
    metric_keys = [k for k in METRIC_COLUMNS if sub[k].notna().any()]
    tags = _data_tags(sub)
    marks = {idx: _marks(r, tags) for idx, r in sub.iterrows()}
    # bold only among unmarked rows (the method's measured number on the complete split), and never
    # when the rows were evaluated on different data
    eligible = sub.loc[[idx for idx, m in marks.items() if not m]]
    bold = {k: set() if tags else _best_rows(eligible, k, ci) for k in metric_keys}
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
    for idx, r in order.iterrows():
        row = [" ".join([r["method"], *(mark for mark, _ in marks[idx])])]
        if r["selected_on"]:  # numbers of a checkpoint chosen on a validation split (this one, or another)
            row[0] += (" (checkpoint selected on this split)" if r["selected_on"] == r["dataset"]
                       else f" (checkpoint selected on {r['selected_on']})")
        if _n_seeds(r) > 1:
            row[0] += f" ({_n_seeds(r)} seeds)"
        if has_source:
            src = r["source"]
            if src == "ours":
                row.append("ours")
            else:
                n = footnotes.setdefault(src, len(footnotes) + 1)
                row.append(f"published [{n}]")
        for k in metric_keys:
            row.append(_cell(r, k, ci, idx in bold[k]))
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
    present = {note for m in marks.values() for _, note in m}
    for note in (UNTRAINED_NOTE, OFF_COUNT_NOTE, EDITED_NOTE, DATA_TAG_NOTE.format(n=len(tags))):
        if note in present:
            parts += [note, ""]
    return parts


def _marks(r: pd.Series, tags: dict[str, int]) -> list[tuple[str, str]]:
    """``(mark after the method name, note under the table)`` for each reason a row is not the
    method's measured number on the complete split, or on the data of the table's other rows."""
    out = []
    if bool(r["untrained"]):
        out.append((UNTRAINED_MARK, UNTRAINED_NOTE))
    if r["off_count"]:
        out.append((r["off_count"], OFF_COUNT_NOTE))
    if bool(r["edited"]):
        out.append((EDITED_MARK, EDITED_NOTE))
    if r["data_fingerprint"] in tags and not r["off_count"]:
        out.append((f"[data {tags[r['data_fingerprint']]}]", DATA_TAG_NOTE.format(n=len(tags))))
    return out


def _data_tags(sub: pd.DataFrame) -> dict[str, int]:
    """``{data fingerprint: k}`` when our complete-split rows of one table were evaluated on different
    data (frame ids and label hashes differ), else ``{}``. Published rows carry no fingerprint, and
    partial copies are marked as such already."""
    ours = sub[(sub["source"] == "ours") & (sub["off_count"] == "") & (sub["data_fingerprint"] != "")]
    prints = sorted(set(ours["data_fingerprint"]))
    return {fp: k for k, fp in enumerate(prints, 1)} if len(prints) > 1 else {}

