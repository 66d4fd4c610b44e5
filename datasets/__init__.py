"""Dataset adapters (import name ``oodbench.datasets``).

Every split is registered in :data:`DATASETS` under its CLI name (``fishyscapes-laf-val``,
``smiyc-anomaly-val``, ...). :func:`get_split` builds one for a data root; each split yields
:class:`oodbench.contracts.Frame` objects whose labels already follow the 0/1/255 contract.
"""
if __name__ != "oodbench.datasets":  # pragma: no cover - guard against the shadowing mistake
    raise ImportError(
        "this folder is the package 'oodbench.datasets'; import it as 'oodbench.datasets', "
        "never as top-level 'datasets' (that name belongs to Hugging Face's library)"
    )

from .base import (
    DATA_MANIFEST,
    DATASETS,
    DataLayoutError,
    FrameLabels,
    Split,
    find_available,
    get_split,
    input_digest,
    read_manifest,
    register_split,
    require_available,
    resolve_data_root,
    resolve_splits,
)

__all__ = [
    "DATA_MANIFEST",
    "DATASETS",
    "input_digest",
    "DataLayoutError",
    "FrameLabels",
    "Split",
    "find_available",
    "get_split",
    "read_manifest",
    "register_split",
    "require_available",
    "resolve_data_root",
    "resolve_splits",
]

# built-in adapters register themselves on import
from . import _builtin  # noqa: F401
