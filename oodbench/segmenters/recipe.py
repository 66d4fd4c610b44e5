"""Deterministic fake weights ("recipe v2") in the layout of an official checkpoint manifest.

The real released checkpoints are large and not redistributable in tests, so compatibility is
proven with weights drawn by a fixed recipe from a *manifest* (the ``[key, shape, dtype]`` list of
an official file) and compared with the outputs of the official model classes on those weights
(``golden_<name>.npz``). Recipe and manifests: ``shared/compat/README.md`` ("Deterministic weight
recipe v2 (seed 0)"); copies live in ``tests/data/compat/``.

Recipe v2, for the entries in manifest order, with ONE ``np.random.default_rng(0)`` stream:

1. ``leaf == "num_batches_tracked"``: int64 zero, no draw.
2. every other (float32) entry draws ``Z = rng.standard_normal(shape)`` (float64, C order), then
3. ``len(shape) >= 2`` (conv weight): ``Z / sqrt(prod(shape[1:]))``;
4. BatchNorm entry (``prefix + ".running_var"`` is a key): weight ``1 + 0.1 Z``, bias ``0.1 Z``,
   running_mean ``0.1 Z``, running_var ``0.5 + 0.5 |Z|``;
5. any other float entry: ``0.1 Z``;

each computed in float64 and cast to float32. The result is wrapped like the official file:
``{wrapper.state_dict_key: OrderedDict(...)}`` with the keys exactly as listed (prefix included).
"""
from __future__ import annotations

import json
import math
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from oodbench.errors import OodbenchError

__all__ = [
    "RECIPE_VERSION",
    "ManifestError",
    "load_manifest",
    "recipe_state_dict",
    "recipe_checkpoint",
    "save_recipe_checkpoint",
    "recipe_check_values",
]

RECIPE_VERSION = 2

_DTYPES = {"float32": torch.float32, "int64": torch.int64}


class ManifestError(OodbenchError, ValueError):
    """A checkpoint manifest is malformed (the message names the file and the entry)."""


def load_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a compat manifest JSON (``name``, ``wrapper``, ``keys`` ...)."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read manifest: {exc}") from exc
    for field in ("name", "wrapper", "keys"):
        if field not in manifest:
            raise ManifestError(f"{path}: manifest has no {field!r} field")
    for i, entry in enumerate(manifest["keys"]):
        if not (isinstance(entry, list) and len(entry) == 3 and entry[2] in _DTYPES):
            raise ManifestError(f"{path}: keys[{i}] must be [key, shape, 'float32'|'int64'], got {entry!r}")
    manifest["_path"] = str(path)
    return manifest


def _entry_value(key: str, shape: list[int], dtype: str, names: set[str], rng: np.random.Generator) -> torch.Tensor:
    prefix, _, leaf = key.rpartition(".")
    if leaf == "num_batches_tracked":
        return torch.zeros(tuple(shape), dtype=_DTYPES[dtype])
    if dtype != "float32":
        raise ManifestError(f"recipe v2: entry {key!r} has dtype {dtype}; only float32 entries are drawn")
    z = rng.standard_normal(tuple(shape))
    if len(shape) >= 2:
        value = z / math.sqrt(math.prod(shape[1:]))
    elif prefix + ".running_var" in names:
        if leaf == "weight":
            value = 1.0 + 0.1 * z
        elif leaf in ("bias", "running_mean"):
            value = 0.1 * z
        elif leaf == "running_var":
            value = 0.5 + 0.5 * np.abs(z)
        else:
            raise ManifestError(f"recipe v2: unexpected BatchNorm entry {key!r}")
    else:
        value = 0.1 * z
    return torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))


def recipe_state_dict(manifest: Mapping[str, Any], seed: int = 0) -> "OrderedDict[str, torch.Tensor]":
    """All entries of ``manifest`` (keys exactly as listed, official order) under recipe v2."""
    keys = manifest["keys"]
    names = {k for k, _, _ in keys}
    rng = np.random.default_rng(seed)
    return OrderedDict((k, _entry_value(k, shape, dt, names, rng)) for k, shape, dt in keys)


def recipe_checkpoint(manifest: Mapping[str, Any], seed: int = 0) -> dict[str, Any]:
    """The recipe weights wrapped like the official file (``{'state_dict': ...}`` etc.)."""
    sd = recipe_state_dict(manifest, seed)
    wrap_key = manifest["wrapper"].get("state_dict_key")
    return {wrap_key: sd} if wrap_key else dict(sd)


def save_recipe_checkpoint(manifest: Mapping[str, Any], path: str | os.PathLike, seed: int = 0) -> Path:
    """Write :func:`recipe_checkpoint` with ``torch.save`` (atomically) and return the path."""
    from oodbench.atomic import atomic_path

    with atomic_path(path) as tmp:
        torch.save(recipe_checkpoint(manifest, seed), tmp)
    return Path(path)


def recipe_check_values(state_dict: Mapping[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """Group counts and sums as tabulated in ``compat/README.md`` ("Check values for recipe v2").

    Groups: ``conv`` (ndim >= 2), BatchNorm ``bn_weight``/``bn_bias``/``bn_running_mean``/
    ``bn_running_var``, ``other`` (remaining 1-D floats) and ``all`` (every float entry). Each entry
    is summed in float64 and the entry sums are added in manifest order; ``conv`` also reports the
    sum of squares (the robust check).
    """
    names = set(state_dict)
    groups: dict[str, dict[str, float]] = {}

    def add(group: str, t: torch.Tensor) -> None:
        g = groups.setdefault(group, {"entries": 0, "elements": 0, "sum": 0.0, "sumsq": 0.0})
        a = t.detach().double()
        g["entries"] += 1
        g["elements"] += a.numel()
        g["sum"] += float(a.sum())
        g["sumsq"] += float((a * a).sum())

    for key, t in state_dict.items():
        if not t.is_floating_point():
            continue
        prefix, _, leaf = key.rpartition(".")
        if t.ndim >= 2:
            add("conv", t)
        elif prefix + ".running_var" in names:
            add(f"bn_{leaf}", t)
        else:
            add("other", t)
        add("all", t)
    return groups
