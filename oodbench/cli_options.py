"""Option groups shared by several commands, as dataclasses the parsers are generated from.

A command's config dataclass includes a group as a field (``data: DataOptions``) and gets its flags
through :func:`oodbench.cli_config.add_dataclass_arguments`; a single shared flag is a shared field
``metadata`` (:data:`FPR_RULE`, :data:`PROTOCOL`). The bootstrap group lives with the intervals it
asks for (:class:`oodbench.intervals.BootstrapOptions`). Nothing here imports torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from oodbench.cli_config import arg
from oodbench.metrics import FPR_RULES

__all__ = ["DATA_ROOT", "FPR_RULE", "PROTOCOL", "DataOptions", "ProgressOptions", "MethodOptions"]

#: ``--data-root``
DATA_ROOT = arg("data root (default: $OODBENCH_DATA)")

#: ``--fpr-rule`` (run, evaluate, compare)
FPR_RULE = arg("FPR95 rule (default: the protocol's own; official protocols accept only theirs, --protocol exact "
               "accepts all three); stored in the record and its file name", choices=FPR_RULES)

#: ``--protocol`` (run, evaluate, compare)
PROTOCOL = arg("override the split's official protocol")


@dataclass(kw_only=True)
class DataOptions:
    """Where the splits are, and how strictly their files are checked
    (:func:`oodbench.cli_support.resolve_splits_for_args` reads these names)."""

    data_root: str | None = field(default=None, metadata=DATA_ROOT)
    no_count_check: bool = field(default=False, metadata=arg(
        "accept splits whose frame count differs from the official one", action="store_true"))
    layout: str | None = field(default=None, metadata=arg(
        "for datasets present in both layouts under the data root", choices=["official", "preprocessed"]))


@dataclass(kw_only=True)
class ProgressOptions:
    """``-q`` / ``--progress`` (:func:`oodbench.cli_support.want_progress` reads these names)."""

    quiet: bool = field(default=False, metadata=arg("no progress bars", flags=("-q", "--quiet"), action="store_true"))
    progress: bool = field(default=False, metadata=arg(
        "progress bars even when stderr is not a terminal (default: only on a terminal)", action="store_true"))


@dataclass(kw_only=True)
class MethodOptions:
    """The method to build and its constructor arguments (:func:`oodbench.cli_support.method_kwargs`
    reads these names): ``run``, ``fit``, ``fishyscapes-predict``."""

    method: str = field(metadata=arg("registered method name (`oodbench list methods`)"))
    checkpoint: str | None = field(default=None, metadata=arg("method / segmenter weights"))
    segmenter: str | None = field(default=None, metadata=arg("closed-set segmenter name"))
    param: list[str] | None = field(default=None, metadata=arg(
        "method hyperparameter", action="append", metavar="KEY=VALUE"))
