"""What :func:`oodbench.runner.run_method` is asked to do, and the ``oodbench run`` flags for it.

Torch-free (the runner imports torch; the CLI builds its parser from this dataclass without it).
:mod:`oodbench.runner` re-exports :class:`RunConfig`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oodbench.cli_config import arg
from oodbench.cli_options import FPR_RULE, PROTOCOL
from oodbench.cli_support import positive_int, run_name

__all__ = ["RunConfig"]


@dataclass
class RunConfig:
    """Runner settings; every field but ``progress`` and ``bootstrap`` is a flag of ``oodbench run``
    (those two the command computes from ``-q/--progress`` and ``--bootstrap/--ci/--seed``)."""

    out: Path = field(default=Path("oodbench-out"), metadata=arg("prediction store root"))
    results_dir: Path = field(default=Path("leaderboard/results"), metadata=arg(
        "where result records go", flags=("--results",)))
    device: str = field(default="cpu", metadata=arg("torch device: cpu, cuda, cuda:1"))
    batch_size: int = field(default=1, metadata=arg("images per forward pass", parse=positive_int))
    num_workers: int = field(default=0, metadata=arg("DataLoader worker processes decoding frames"))
    overwrite: bool = field(default=False, metadata=arg("recompute stored predictions", action="store_true"))
    #: "bf16" (CUDA or CPU) | "fp16" (CUDA only; ignored on CPU) | None
    amp: str | None = field(default=None, metadata=arg(
        "autocast: bf16 on CUDA or CPU, fp16 on CUDA only (ignored on CPU)", choices=["bf16", "fp16"]))
    progress: bool = field(default=True, metadata=arg(cli=False))
    protocol: str | None = field(default=None, metadata=PROTOCOL)
    #: FPR95 rule (``oodbench.metrics.FPR_RULES``); None = the protocol's own
    fpr_rule: str | None = field(default=None, metadata=FPR_RULE)
    #: score a method whose weights come from nowhere (random / unfitted) and mark its records
    allow_untrained: bool = field(default=False, metadata=arg(
        "score a method without trained weights (no --checkpoint, or a segmenter-only file for rpl); its records "
        "and leaderboard rows are marked untrained", action="store_true"))
    #: trust stored frames that carry no configuration record as this configuration's (recorded
    #: in the manifest with the adopted frame ids)
    adopt_store: bool = field(default=False, metadata=arg(
        "trust stored frames that carry no configuration record (older oodbench, other tools) as made by this "
        "exact configuration; the manifest records the frames adopted", action="store_true"))
    #: frame-bootstrap intervals in the records (``oodbench.intervals.BootstrapSpec``); None = none
    bootstrap: Any = field(default=None, metadata=arg(cli=False))
    #: run name (``--name``): store folder, record file and leaderboard row; None = the method's name
    name: str | None = field(default=None, metadata=arg(
        "run name: store folder, record file and leaderboard row (default: the method name); two configurations "
        "of one method get two names", parse=run_name))
    #: fitted state written by ``oodbench fit`` (``--state``), loaded into the method before it runs
    state: Path | None = field(default=None, metadata=arg(
        "fitted state written by `oodbench fit` (methods with requires_fit)"))
