"""The prediction store: one on-disk format for every dataset.

Layout (the SMIYC wrapper's, extended to every benchmark)::

    <out>/anomaly_p/<method>/<key>/<frame-id>.hdf5   # dataset "value", gzip, [H, W]
    <out>/semantic/<method>/<key>/<frame-id>.png     # uint8 closed-set class ids
    <out>/anomaly_p/<method>/<key>/.oodbench-run.json # what produced the files (method, checkpoint)

``<key>`` is the SMIYC persistence name for SMIYC splits (``AnomalyTrack-all``,
``ObstacleTrack-all``, ``LostAndFound-test``) and the split name otherwise. SMIYC splits are stored
as float16 exactly as the official ``Evaluation.save_output`` writes them (gzip level 9); every
other split as float32.

float16 overflow guard: float16 cannot hold ``|s| > 65504``. Before casting, scores pass through
the fixed, strictly monotone map :func:`float16_guard` (identity on ``[-8192, 8192]``, logarithmic
compression beyond), applied identically to every frame, so rankings - and therefore every curve
metric up to float16 quantisation - are preserved. Nothing is ever clipped.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

import h5py
import numpy as np
from PIL import Image

from .atomic import atomic_path, atomic_write_json
from .contracts import ContractError

__all__ = [
    "PredictionStore",
    "PredictionError",
    "float16_guard",
    "FLOAT16_GUARD_KNEE",
    "FLOAT16_GUARD_VERSION",
]

FLOAT16_GUARD_KNEE = 8192.0
_GUARD_SLOPE = 512.0
FLOAT16_GUARD_VERSION = "log-knee-8192-512/v1"
RUN_MANIFEST = ".oodbench-run.json"


def _all_finite(scores: np.ndarray) -> bool:
    """``np.isfinite(scores).all()``; for float16 (SMIYC) by the exponent bits, ~50x faster."""
    if scores.dtype == np.float16:
        return scores.size == 0 or int(np.bitwise_and(scores.view(np.uint16), np.uint16(0x7FFF)).max()) < 0x7C00
    return bool(np.isfinite(scores).all())


class PredictionError(ContractError):
    """A stored prediction is missing, corrupt or does not match its frame (message names the file)."""


def float16_guard(scores: np.ndarray) -> tuple[np.ndarray, bool]:
    r"""Monotone map that keeps scores inside the float16 range.

    .. math::
        g(s) = \begin{cases} s & |s| \le K \\
        \operatorname{sign}(s)\,\bigl(K + 512 \ln(|s| / K)\bigr) & |s| > K \end{cases}

    with :math:`K = 8192`. :math:`g` is continuous and strictly increasing, and
    :math:`g(\pm 3.4\times10^{38}) \approx \pm 49{,}000 < 65{,}504`, so no finite float32 score
    overflows. Returns ``(mapped, changed)``.
    """
    s = np.asarray(scores)
    big = np.abs(s) > FLOAT16_GUARD_KNEE
    if not big.any():
        return s, False
    out = s.astype(np.float64, copy=True)
    a = np.abs(out[big])
    out[big] = np.sign(out[big]) * (FLOAT16_GUARD_KNEE + _GUARD_SLOPE * np.log(a / FLOAT16_GUARD_KNEE))
    return out, True


class PredictionStore:
    """Reads and writes predictions under ``root`` for one method."""

    def __init__(self, root: str | os.PathLike, method: str) -> None:
        self.root = Path(root)
        self.method = method

    # -- paths --------------------------------------------------------------------------------
    def anomaly_dir(self, key: str) -> Path:
        return self.root / "anomaly_p" / self.method / key

    def semantic_dir(self, key: str) -> Path:
        return self.root / "semantic" / self.method / key

    def anomaly_path(self, key: str, frame_id: str) -> Path:
        return self.anomaly_dir(key) / f"{frame_id}.hdf5"

    def semantic_path(self, key: str, frame_id: str) -> Path:
        return self.semantic_dir(key) / f"{frame_id}.png"

    # -- writing ------------------------------------------------------------------------------
    def write_anomaly(self, key: str, frame_id: str, scores: np.ndarray, dtype: str = "float32") -> bool:
        """Atomically write one score map; returns whether the float16 guard changed values."""
        arr = np.asarray(scores)
        if arr.ndim != 2:
            raise ContractError(f"{self.method}/{key}/{frame_id}: score map must be 2-D, got {arr.shape}")
        if not np.isfinite(arr).all():
            raise ContractError(f"{self.method}/{key}/{frame_id}: score map contains NaN or inf")
        guarded = False
        if dtype == "float16":
            arr, guarded = float16_guard(arr)
            out = arr.astype(np.float16)
            compression_opts = 9
        elif dtype == "float32":
            out = arr.astype(np.float32)
            compression_opts = 4
        else:
            raise ValueError(f"unsupported storage dtype {dtype!r}")
        with atomic_path(self.anomaly_path(key, frame_id)) as tmp:
            with h5py.File(tmp, "w") as fh:
                fh.create_dataset("value", data=out, compression="gzip", compression_opts=compression_opts)
        return guarded

    def write_semantic(self, key: str, frame_id: str, classes: np.ndarray) -> None:
        arr = np.asarray(classes)
        if arr.ndim != 2 or arr.min(initial=0) < 0 or arr.max(initial=0) > 255:
            raise ContractError(f"{self.method}/{key}/{frame_id}: class map must be 2-D with ids 0..255")
        with atomic_path(self.semantic_path(key, frame_id)) as tmp:
            Image.fromarray(arr.astype(np.uint8)).save(tmp, format="PNG", optimize=False)

    def write_run_manifest(self, key: str, info: dict[str, Any]) -> None:
        atomic_write_json(self.anomaly_dir(key) / RUN_MANIFEST, info)

    def read_run_manifest(self, key: str) -> dict[str, Any] | None:
        path = self.anomaly_dir(key) / RUN_MANIFEST
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise PredictionError(f"{path}: unreadable run manifest ({exc})") from exc

    # -- reading ------------------------------------------------------------------------------
    def has_anomaly(self, key: str, frame_id: str) -> bool:
        return self.anomaly_path(key, frame_id).is_file()

    def read_anomaly(self, key: str, frame_id: str, *, shape: tuple[int, ...] | None = None,
                     dtype: Any = None) -> np.ndarray:
        """Read one score map in its stored dtype (float16 for SMIYC keys); squeezes singleton dims.

        Every reader (evaluation, submission, plots) gets the same guarantees, so a file one of them
        accepts is never refused by another: ``value`` present and readable, 2-D, floating point,
        finite; and, when given, exactly ``shape`` (after squeezing) and ``dtype``.

        Raises:
            PredictionError: the first check that fails, naming the file.
        """
        path = self.anomaly_path(key, frame_id)
        if not path.is_file():
            raise PredictionError(f"missing prediction {path}")
        try:
            with h5py.File(path, "r") as fh:
                if "value" not in fh:
                    raise PredictionError(f"{path}: no dataset 'value' (found {sorted(fh.keys())})")
                arr = fh["value"][()]
        except PredictionError:
            raise
        except Exception as exc:  # h5py raises OSError/KeyError variants for corrupt files
            raise PredictionError(f"{path}: corrupt or unreadable HDF5 file ({exc})") from exc
        arr = np.squeeze(np.asarray(arr))
        if arr.ndim != 2:
            raise PredictionError(f"{path}: expected a 2-D score map, got shape {arr.shape}")
        if arr.dtype.kind != "f":
            raise PredictionError(f"{path}: expected floating-point scores, got {arr.dtype}")
        if dtype is not None and arr.dtype != np.dtype(dtype):
            raise PredictionError(f"{path}: stored as {arr.dtype}, expected {np.dtype(dtype)}")
        if shape is not None and arr.shape != tuple(shape):
            raise PredictionError(f"{path}: shape {arr.shape} != expected {tuple(shape)}")
        if not _all_finite(arr):
            finite = np.isfinite(arr)
            n_nan = int(np.isnan(arr).sum())
            raise PredictionError(f"{path}: scores contain NaN or inf ({n_nan} NaN, "
                                  f"{int(arr.size - finite.sum()) - n_nan} inf of {arr.size} values)")
        return arr

    def read_semantic(self, key: str, frame_id: str) -> np.ndarray | None:
        path = self.semantic_path(key, frame_id)
        if not path.is_file():
            return None
        try:
            with Image.open(path) as im:
                return np.asarray(im)
        except Exception as exc:
            raise PredictionError(f"{path}: corrupt or unreadable PNG ({exc})") from exc

    def missing(self, key: str, frame_ids: Iterable[str]) -> list[str]:
        """Frame ids without a stored anomaly map."""
        d = self.anomaly_dir(key)
        present = {p.stem for p in d.glob("*.hdf5")} if d.is_dir() else set()
        return [f for f in frame_ids if f not in present]

    def has_semantic(self, key: str, frame_ids: Iterable[str]) -> bool:
        d = self.semantic_dir(key)
        if not d.is_dir():
            return False
        present = {p.stem for p in d.glob("*.png")}
        return all(f in present for f in frame_ids)
