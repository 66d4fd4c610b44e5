"""oodbench: a benchmark harness for pixel-wise out-of-distribution (anomaly) segmentation.

Public entry points:

* :mod:`oodbench.metrics` -- exact, mergeable pixel metrics and the official protocols;
* :mod:`oodbench.datasets` -- dataset adapters (``oodbench.datasets.get_split``);
* :mod:`oodbench.methods` -- method plugins (``oodbench.methods.build``);
* :mod:`oodbench.segmenters` -- closed-set DeepLabV3+ models (``oodbench.segmenters.build``);
* the ``oodbench`` command line (``oodbench --help``).
"""
from __future__ import annotations

import importlib.metadata

from .contracts import ANOMALY, IGNORE, INLIER, ContractError, Frame
from .registry import Registry, RegistryError

try:
    __version__ = importlib.metadata.version("oodbench")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - source tree without install
    __version__ = "0+unknown"

__all__ = [
    "__version__",
    "ANOMALY",
    "IGNORE",
    "INLIER",
    "ContractError",
    "Frame",
    "Registry",
    "RegistryError",
]
