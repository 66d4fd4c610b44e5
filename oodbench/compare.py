"""``oodbench compare``: paired frame-bootstrap comparison of two methods' stored predictions.

Both methods are evaluated over the same frames in the same order (the split's ``frame_ids()``;
the SMIYC accumulators match frames by position), and every bootstrap replicate draws the *same*
frames for both, so the interval of a difference is far narrower than two overlapping intervals
suggest.  Per metric: ``delta`` (first method minus second, on the full sample), ``ci`` (the
interval of the replicate differences) and ``p_value`` (two-sided bootstrap p-value of "no
difference"; :func:`oodbench.metrics.paired_bootstrap`).  A method against itself gives
``delta`` 0, ``ci`` ``[0, 0]`` and ``p_value`` 1.

No model is loaded and torch is not imported.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import Any

from .cli_config import arg
from .cli_options import FPR_RULE, PROTOCOL, DataOptions, ProgressOptions
from .intervals import BootstrapOptions, BootstrapSpec

__all__ = ["compare_split", "CompareConfig", "add_compare_parser", "cmd_compare", "render_comparisons"]


def compare_split(split: Any, predictions: Any, method_a: str, method_b: str, spec: BootstrapSpec, *,
                  protocol: str | None = None, fpr_rule: str | None = None, progress: bool = False,
                  predictions_b: Any = None) -> dict[str, Any]:
    """The paired comparison record of ``method_a - method_b`` on ``split``.

    Args:
        predictions: prediction root of both methods (``anomaly_p/<method>/...``); ``predictions_b``
            overrides it for ``method_b``.
        spec: replicates, level and seed (the same frames are drawn for both methods).

    Returns:
        ``{"dataset", "protocol", "protocol_version", "fpr_rule", "methods": [a, b], "untrained":
        [bool, bool], "num_frames", "expected_frames", "values": [{...}, {...}], "metrics": {metric:
        {"delta", "ci", "p_value"}}, "bootstrap": {...}}`` (``values``: the exact full-sample metrics
        of each method, in ``methods`` order, null where undefined; ``untrained``: whose predictions
        came from a ``run --allow-untrained``; ``expected_frames``: the complete split's frame
        count, see :attr:`oodbench.results.Result.expected_frames`; both are marked wherever the
        comparison is rendered).
    """
    from .evaluate import evaluate_split
    from .intervals import paired_intervals
    from .metrics.bootstrap import _spec
    from .store import PredictionStore

    evs, untrained = [], []
    for method, root in ((method_a, predictions), (method_b, predictions if predictions_b is None else predictions_b)):
        store = PredictionStore(root, method)
        manifest = store.read_run_manifest(split.key) or {}
        untrained.append(bool(manifest.get("untrained", False)))
        evs.append(evaluate_split(split, store, protocol, frame_ids=split.frame_ids(),
                                  semantic_label_space=manifest.get("semantic_label_space"),
                                  progress=progress, fpr_rule=fpr_rule, bootstrap=spec))
    a, b = evs
    paired = paired_intervals(a.frame_states, b.frame_states, spec)
    note = {**_spec(spec.n, spec.level, spec.seed, spec.method), **{
        k: v for k, v in (a.bootstrap or {}).items() if k in ("binned",)}}
    def values(ev: Any) -> dict[str, float | None]:
        return {k: (None if v is None or v != v else v) for k, v in ((k, ev.metrics.get(k)) for k in paired)}

    return {"dataset": split.name, "protocol": a.protocol, "protocol_version": a.protocol_version,
            "fpr_rule": a.fpr_rule, "methods": [method_a, method_b], "untrained": untrained,
            "num_frames": int(a.num_frames), "expected_frames": split.expected(),
            "values": [values(a), values(b)], "metrics": paired, "bootstrap": note}


def render_comparisons(records: list[dict[str, Any]], metrics: tuple[str, ...] = ("auprc", "auroc", "fpr95"),
                       title: str | None = None) -> str:
    """A markdown table of paired comparisons: per record, each metric's difference in percentage
    points with its interval, and its p-value."""
    from tabulate import tabulate

    from .leaderboard import METRIC_COLUMNS, OFF_COUNT_NOTE, UNTRAINED_MARK, off_count_mark

    if not records:
        return ""
    spec = records[0]["bootstrap"]
    shown = [k for k in metrics if any(k in r["metrics"] for r in records)]
    headers = ["Split", "Method", "Baseline"]
    for k in shown:
        name, higher, _ = METRIC_COLUMNS.get(k, (k, True, True))
        headers += [f"Δ {name} {'↑' if higher else '↓'}", "p"]
    rows = []
    for r in records:
        marks = r.get("untrained") or (False, False)
        off = off_count_mark(r.get("num_frames", 0), r.get("expected_frames"))
        row = [f"{r['dataset']} {off}" if off else r["dataset"],
               *(f"{m} {UNTRAINED_MARK}" if u else m for m, u in zip(r["methods"], marks))]
        for k in shown:
            m = r["metrics"].get(k)
            if m is None or m["delta"] is None:
                row += ["-", "-"]
                continue
            lo, hi = m["ci"]
            ci = "[-, -]" if lo is None or hi is None else f"[{100 * lo:+.1f}, {100 * hi:+.1f}]"
            row += [f"{100 * m['delta']:+.1f} {ci}", _p(m["p_value"])]
        rows.append(row)
    lines = []
    if title:
        lines += [title, ""]
    lines += [f"Differences Method − Baseline in percentage points, with the {100 * spec['level']:g} % "
              f"paired frame-bootstrap interval ({spec['n']} replicates, seed {spec['seed']}: both "
              "methods scored on the same resampled frames) and the two-sided bootstrap p-value.", ""]
    lines.append(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))
    if any(any(r.get("untrained") or ()) for r in records):
        lines += ["", f"{UNTRAINED_MARK}: predictions of a run on random or unfitted weights "
                      "(`--allow-untrained`); a difference to it says nothing about the method."]
    if any(off_count_mark(r.get("num_frames", 0), r.get("expected_frames")) for r in records):
        lines += ["", OFF_COUNT_NOTE.replace(", never in bold", "")]
    return "\n".join(lines) + "\n"


def _p(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.3f}" if p >= 0.001 else "< 0.001"


@dataclass(kw_only=True)
class _CompareBootstrap(BootstrapOptions):
    """``compare`` always bootstraps: 1000 replicates unless ``--bootstrap`` says otherwise."""

    bootstrap: int | None = field(default=1000, metadata=BootstrapOptions.__dataclass_fields__["bootstrap"].metadata)


@dataclass(kw_only=True)
class CompareConfig:
    """``oodbench compare`` (flags generated by :func:`oodbench.cli_config.add_dataclass_arguments`)."""

    predictions: str = field(metadata=arg("root holding anomaly_p/<method>/... of both methods"))
    methods: list[str] = field(metadata=arg("two method names A B: the differences reported are A - B",
                                            metavar="METHOD"))
    dataset: list[str] = field(metadata=arg("split name(s) or 'all'"))
    protocol: str | None = field(default=None, metadata=PROTOCOL)
    fpr_rule: str | None = field(default=None, metadata=FPR_RULE)
    json: str | None = field(default=None, metadata=arg(
        "write the comparison records (a list) here; '-' = stdout", metavar="PATH|-"))
    intervals: _CompareBootstrap = field(default_factory=_CompareBootstrap)
    data: DataOptions = field(default_factory=DataOptions)
    display: ProgressOptions = field(default_factory=ProgressOptions)


def cmd_compare(args: argparse.Namespace) -> int:
    from .cli_config import config_from_namespace
    from .cli_support import CLIError, resolve_splits_for_args
    from .intervals import spec_from_args

    cfg = config_from_namespace(CompareConfig, args)
    if len(cfg.methods) != 2:
        raise CLIError(f"--methods takes exactly two method names (A B: reports A - B), got {len(cfg.methods)}")
    spec = spec_from_args(cfg.intervals)
    splits = resolve_splits_for_args(cfg.data, cfg.dataset)
    records = [compare_split(split, cfg.predictions, *cfg.methods, spec, protocol=cfg.protocol,
                             fpr_rule=cfg.fpr_rule, progress=not cfg.display.quiet) for split in splits]
    if cfg.json:
        from .atomic import atomic_write_json

        if cfg.json == "-":
            import json

            json.dump(records, sys.stdout, indent=2)
            sys.stdout.write("\n")
            return 0
        atomic_write_json(cfg.json, records)
    print(render_comparisons(records, title="oodbench paired comparison"))
    return 0


def add_compare_parser(sub: argparse._SubParsersAction) -> None:
    from .cli_config import add_command

    add_command(sub, "compare", CompareConfig, cmd_compare,
                help="paired bootstrap comparison of two methods' stored predictions")
