"""The config dataclass of each core command; :func:`oodbench.cli.build_parser` generates their flags.

``list``, ``run``, ``evaluate``, ``leaderboard`` and ``submit`` (``compare``'s lives in
:mod:`oodbench.compare`). A field is a flag (:mod:`oodbench.cli_config`), a nested field an option
group shared with other commands (:mod:`oodbench.cli_options`); the command functions in
:mod:`oodbench.cli` read these configs, not loose namespace attributes. Torch-free.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from oodbench.cli_config import arg
from oodbench.cli_options import DATA_ROOT, FPR_RULE, PROTOCOL, DataOptions, MethodOptions, ProgressOptions
from oodbench.intervals import BootstrapOptions
from oodbench.run_config import RunConfig

__all__ = ["ListConfig", "RunCommandConfig", "EvaluateConfig", "LeaderboardConfig", "SubmitConfig"]

_RECORDS_JSON = arg("write the result records as a JSON list (- = stdout)", metavar="PATH|-")


@dataclass(kw_only=True)
class ListConfig:
    """``oodbench list``."""

    what: str = field(metadata=arg("what to list", positional=True, choices=["methods", "datasets", "segmenters"]))
    data_root: str | None = field(default=None, metadata=DATA_ROOT)
    json: str | None = field(default=None, metadata=arg("write the list as JSON records (- = stdout)",
                                                        metavar="PATH|-"))


@dataclass(kw_only=True)
class RunCommandConfig:
    """``oodbench run``: the method, the splits, what to write, and the runner's own settings
    (:class:`~oodbench.run_config.RunConfig`, less the two fields the command computes)."""

    method: MethodOptions
    dataset: list[str] = field(metadata=arg("split name(s) or 'all'"))
    postprocess: str | None = field(default=None, metadata=arg(
        "wrap the method in a post-process: 'ground-focus' (RPL supplementary Table 1: scores outside the "
        "road+sidewalk convex hull set to the image minimum); recorded in hparams. Records keep the method's "
        "name: give such runs their own --out and --results", metavar="NAME"))
    json: str | None = field(default=None, metadata=_RECORDS_JSON)
    run: RunConfig = field(default_factory=RunConfig)
    intervals: BootstrapOptions = field(default_factory=BootstrapOptions)
    data: DataOptions = field(default_factory=DataOptions)
    display: ProgressOptions = field(default_factory=ProgressOptions)


@dataclass(kw_only=True)
class EvaluateConfig:
    """``oodbench evaluate``: score a stored prediction tree."""

    predictions: str = field(metadata=arg("root holding anomaly_p/<method>/..."))
    method: str = field(metadata=arg("run name: the folder under anomaly_p/ (`oodbench run --name`)"))
    dataset: list[str] = field(metadata=arg("split name(s) or 'all'"))
    protocol: str | None = field(default=None, metadata=PROTOCOL)
    fpr_rule: str | None = field(default=None, metadata=FPR_RULE)
    json: str | None = field(default=None, metadata=_RECORDS_JSON)
    results: str | None = field(default=None, metadata=arg("also write result records here"))
    intervals: BootstrapOptions = field(default_factory=BootstrapOptions)
    data: DataOptions = field(default_factory=DataOptions)
    display: ProgressOptions = field(default_factory=ProgressOptions)


@dataclass(kw_only=True)
class LeaderboardConfig:
    """``oodbench leaderboard``."""

    results: list[str] = field(default_factory=lambda: ["leaderboard/results"], metadata=arg(
        "folder(s) of result records (their top-level *.json; each is validated); records that differ only in "
        "the training seed are shown as mean +- std over seeds"))
    out: str | None = field(default=None, metadata=arg("markdown file to write (default: stdout)"))
    with_published: bool = field(default=False, metadata=arg("add published numbers", action="store_true"))
    ci: bool = field(default=False, metadata=arg(
        "show the records' bootstrap intervals (`oodbench run/evaluate --bootstrap`); bold only where the best "
        "interval does not overlap the runner-up's", action="store_true"))


@dataclass(kw_only=True)
class SubmitConfig:
    """``oodbench submit``: an official submission archive from stored predictions."""

    benchmark: str = field(metadata=arg("benchmark whose format to write", positional=True, choices=["smiyc"]))
    predictions: str = field(metadata=arg("root holding anomaly_p/<method>/..."))
    method: str = field(metadata=arg("run name: the folder under anomaly_p/"))
    out: str = field(metadata=arg("FILE.zip"))
    dataset: list[str] | None = field(default=None, metadata=arg("default: the three SMIYC leaderboard splits"))
    allow_untrained: bool = field(default=False, metadata=arg(
        "submit predictions of a run on untrained weights (`run --allow-untrained`; refused otherwise)",
        action="store_true"))
    data: DataOptions = field(default_factory=DataOptions)
    display: ProgressOptions = field(default_factory=ProgressOptions)
