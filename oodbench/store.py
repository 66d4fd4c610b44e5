"""The prediction store: one on-disk format for every dataset.

Layout (the SMIYC wrapper's, extended to every benchmark)::

    <out>/anomaly_p/<method>/<key>/<frame-id>.hdf5   # dataset "value", gzip, [H, W]
    <out>/semantic/<method>/<key>/<frame-id>.png     # uint8 closed-set class ids
    <out>/anomaly_p/<method>/<key>/.oodbench-run.json # what produced the files (method, checkpoint)

Attribution: every score file carries the digest of the configuration that wrote it (HDF5 root
attribute ``oodbench_config``, :func:`config_digest`; the official readers only read ``value``). A
frame's semantic map is written *before* its score file, so the score file is the frame's commit
record: a frame is stored for configuration ``D`` when its ``.hdf5`` says ``D`` and, for splits with
semantic labels, its ``.png`` exists. Frames from another configuration are therefore never
mistaken for this one's, whatever the manifest says or whether it was copied along. Frames written
without a digest (older oodbench, other tools) are *unattributed*; ``oodbench run --adopt-store``
vouches for them, and the manifest lists the frames so adopted. The manifest itself is sealed with
the digest of its content (``manifest_sha256``): one changed by hand (e.g. ``"untrained": true`` ->
``false``) is refused wherever it is read, and ``run --overwrite`` replaces it.

Inputs: a score file also carries the digest of the input files it was predicted from (attribute
``oodbench_input``, :func:`oodbench.datasets.input_digest`: the image bytes, wherever they lie).
When the data under the root changes after a run (another dataset version, a regenerated synthetic
benchmark with the same frame ids), ``run`` recomputes those frames and ``evaluate`` refuses them
(:class:`StalePredictionsError`): a prediction of one image is never scored against another's labels.

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

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable

import h5py
import numpy as np
from PIL import Image

from .atomic import atomic_path, atomic_write_bytes, atomic_write_json, json_sha256
from .contracts import ContractError

__all__ = [
    "PredictionStore",
    "PredictionError",
    "MixedPredictionsError",
    "StalePredictionsError",
    "config_digest",
    "CONFIG_ATTR",
    "INPUT_ATTR",
    "float16_guard",
    "FLOAT16_GUARD_KNEE",
    "FLOAT16_GUARD_VERSION",
    "FLOAT16_GUARD_LIMIT",
]

FLOAT16_GUARD_KNEE = 8192.0
_GUARD_SLOPE = 512.0
#: largest |s| the guard maps to a finite float16 (~3.3e52; every float32 fits)
FLOAT16_GUARD_LIMIT = FLOAT16_GUARD_KNEE * float(np.exp((float(np.finfo(np.float16).max) - FLOAT16_GUARD_KNEE) / _GUARD_SLOPE))
FLOAT16_GUARD_VERSION = "log-knee-8192-512/v1"
RUN_MANIFEST = ".oodbench-run.json"
#: the run manifest's own digest: sha256 of its other fields, so a hand edit is refused, not believed
MANIFEST_DIGEST = "manifest_sha256"
CONFIG_ATTR = "oodbench_config"
#: sha256 of the input files the frame was predicted from (:func:`oodbench.datasets.input_digest`)
INPUT_ATTR = "oodbench_input"
_STORAGE_DTYPES = {"float16": (np.float16, 9), "float32": (np.float32, 4)}


def _all_finite(scores: np.ndarray) -> bool:
    """``np.isfinite(scores).all()``; for float16 (SMIYC) by the exponent bits, ~50x faster."""
    if scores.dtype == np.float16:
        return scores.size == 0 or int(np.bitwise_and(scores.view(np.uint16), np.uint16(0x7FFF)).max()) < 0x7C00
    return bool(np.isfinite(scores).all())


class PredictionError(ContractError):
    """A stored prediction is missing, corrupt or does not match its frame (message names the file)."""


class MixedPredictionsError(PredictionError):
    """The stored frames of one split come from more than one configuration (message names them)."""


class StalePredictionsError(PredictionError):
    """Stored frames were predicted from other input files than the split holds now (message names them)."""


def config_digest(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a method configuration (what a score file is attributed to)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _hdf5_bytes(out: np.ndarray, compression_opts: int, config: str | None, input_digest: str | None = None) -> bytes:
    """The complete HDF5 file, built in memory: a failing disk write then raises a plain ``OSError``
    in Python, never inside an h5py object's destructor (which crashed the process with SIGSEGV)."""
    with h5py.File(f"oodbench-{uuid.uuid4().hex}", "w", driver="core", backing_store=False) as fh:
        fh.create_dataset("value", data=out, compression="gzip", compression_opts=compression_opts)
        if config is not None:
            fh.attrs[CONFIG_ATTR] = config
        if input_digest is not None:
            fh.attrs[INPUT_ATTR] = input_digest
        fh.flush()
        return fh.id.get_file_image()


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
    def write_anomaly(self, key: str, frame_id: str, scores: np.ndarray, dtype: str = "float32",
                      config: str | None = None, input_digest: str | None = None) -> bool:
        """Atomically write one score map, attributed to ``config`` (a :func:`config_digest`) and to
        the input files it was predicted from (``input_digest``, :func:`oodbench.datasets.input_digest`).

        Returns whether the float16 guard changed values. Finite scores that the storage dtype
        cannot hold (beyond float32's +-3.4e38, or float16's range even after the guard) are
        refused with their magnitude, never stored as inf.
        """
        arr = np.asarray(scores)
        where = f"{self.method}/{key}/{frame_id}"
        if arr.ndim != 2:
            raise ContractError(f"{where}: score map must be 2-D, got {arr.shape}")
        if not np.isfinite(arr).all():
            raise ContractError(f"{where}: score map contains NaN or inf")
        if dtype not in _STORAGE_DTYPES:
            raise ValueError(f"unsupported storage dtype {dtype!r}")
        np_dtype, compression_opts = _STORAGE_DTYPES[dtype]
        guarded = False
        mapped = arr
        if dtype == "float16":
            mapped, guarded = float16_guard(arr)
        with np.errstate(over="ignore"):
            out = mapped.astype(np_dtype)
        if not np.isfinite(out).all():
            big = float(np.abs(arr).max())
            limit = FLOAT16_GUARD_LIMIT if dtype == "float16" else float(np.finfo(np_dtype).max)
            how = "the float16 guard maps" if dtype == "float16" else "it holds"
            raise ContractError(
                f"{where}: scores are finite but reach |s| = {big:.3g}, out of range for the storage "
                f"dtype {dtype} ({how} |s| up to {limit:.3g}); rescale the scores with a monotone map"
            )
        atomic_write_bytes(self.anomaly_path(key, frame_id), _hdf5_bytes(out, compression_opts, config, input_digest))
        return guarded

    def write_semantic(self, key: str, frame_id: str, classes: np.ndarray) -> None:
        """Atomically write one class map (before the frame's score file: see the module docstring)."""
        arr = np.asarray(classes)
        if arr.ndim != 2 or arr.min(initial=0) < 0 or arr.max(initial=0) > 255:
            raise ContractError(f"{self.method}/{key}/{frame_id}: class map must be 2-D with ids 0..255")
        with atomic_path(self.semantic_path(key, frame_id)) as tmp:
            Image.fromarray(arr.astype(np.uint8)).save(tmp, format="PNG", optimize=False)

    def write_run_manifest(self, key: str, info: dict[str, Any]) -> None:
        """Write what produced the split's predictions, sealed with :data:`MANIFEST_DIGEST`."""
        body = {k: v for k, v in info.items() if k != MANIFEST_DIGEST}
        atomic_write_json(self.anomaly_dir(key) / RUN_MANIFEST, {**body, MANIFEST_DIGEST: json_sha256(body)})

    def read_run_manifest(self, key: str) -> dict[str, Any] | None:
        """The run manifest (without its digest), ``None`` when there is none.

        Raises :class:`PredictionError` for an unreadable one and for one whose content no longer
        matches its digest: the manifest names the method, checkpoint, fitted state and whether the
        weights were trained, which records copy, so an edited one is refused (manifests of older
        versions carry no digest and are read as they are).
        """
        path = self.anomaly_dir(key) / RUN_MANIFEST
        if not path.is_file():
            return None
        try:
            manifest = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise PredictionError(f"{path}: unreadable run manifest ({exc})") from exc
        if not isinstance(manifest, dict):
            raise PredictionError(f"{path}: not a run manifest (a JSON {type(manifest).__name__})")
        sealed = manifest.pop(MANIFEST_DIGEST, None)
        if sealed is not None and sealed != json_sha256(manifest):
            raise PredictionError(
                f"{path}: the run manifest was changed after oodbench wrote it (its {MANIFEST_DIGEST} no longer "
                "matches its content); rerun `oodbench run` with --overwrite to recompute the predictions"
            )
        return manifest

    # -- reading ------------------------------------------------------------------------------
    def has_anomaly(self, key: str, frame_id: str) -> bool:
        return self.anomaly_path(key, frame_id).is_file()

    def read_config(self, key: str, frame_id: str) -> str | None:
        """The configuration digest recorded in a stored score file (``None``: none recorded).

        Raises :class:`PredictionError` for a missing or unreadable file.
        """
        return self._read_attr(key, frame_id, CONFIG_ATTR)

    def read_input_digest(self, key: str, frame_id: str) -> str | None:
        """The digest of the input files a stored frame was predicted from (``None``: none recorded)."""
        return self._read_attr(key, frame_id, INPUT_ATTR)

    def _read_attr(self, key: str, frame_id: str, name: str) -> str | None:
        path = self.anomaly_path(key, frame_id)
        try:
            with h5py.File(path, "r") as fh:
                value = fh.attrs.get(name)
        except FileNotFoundError:
            raise PredictionError(f"missing prediction {path}") from None
        except Exception as exc:
            raise PredictionError(f"{path}: corrupt or unreadable HDF5 file ({exc})") from exc
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        return None if value is None else str(value)

    def changed_inputs(self, key: str, frame_ids: Iterable[str], current: Callable[[str], str | None],
                       strict: bool = True) -> list[str]:
        """Stored frames among ``frame_ids`` whose recorded input digest differs from ``current(frame_id)``
        (the split's files now): their predictions are stale. Frames without a stored file, without a
        recorded digest (older oodbench, other tools) or without a current one are not counted; with
        ``strict=False`` unreadable score files are skipped instead of raising."""
        ids = list(frame_ids)
        absent = set(self.missing(key, ids))
        changed = []
        for fid in ids:
            if fid in absent:
                continue
            try:
                stored = self.read_input_digest(key, fid)
            except PredictionError:
                if strict:
                    raise
                continue
            if stored is not None:
                now = current(fid)
                if now is not None and now != stored:
                    changed.append(fid)
        return changed

    def attribution(self, key: str, frame_ids: Iterable[str], strict: bool = True) -> dict[str, str | None]:
        """``{frame id: configuration digest}`` for the stored frames among ``frame_ids``.

        A frame without a recorded digest maps to the manifest's digest when the manifest lists it
        as adopted (``--adopt-store``), else to ``None``. With ``strict=False`` unreadable score
        files are left out (they will be rewritten) instead of raising.
        """
        ids = list(frame_ids)
        absent = set(self.missing(key, ids))
        ids = [f for f in ids if f not in absent]
        manifest = self.read_run_manifest(key) or {}
        adopted = set((manifest.get("adopted") or {}).get("frames", ()))
        out: dict[str, str | None] = {}
        for fid in ids:
            try:
                digest = self.read_config(key, fid)
            except PredictionError:
                if strict:
                    raise
                continue
            if digest is None and fid in adopted:
                digest = manifest.get("config_digest")
            out[fid] = digest
        return out

    def check_single_config(self, key: str, frame_ids: Iterable[str]) -> str | None:
        """Refuse a store whose frames come from more than one configuration; return that digest.

        Raises :class:`MixedPredictionsError` (naming frames of each configuration) when the
        frames carry different digests, when some carry one and others none, or when they all
        carry one that differs from the manifest's. A store with no digest at all (written by
        another tool, or an older oodbench) is accepted and ``None`` returned.
        """
        groups: dict[str | None, list[str]] = {}
        for fid, digest in self.attribution(key, list(frame_ids)).items():
            groups.setdefault(digest, []).append(fid)
        manifest = self.read_run_manifest(key) or {}
        expected = manifest.get("config_digest")
        if len(groups) == 1:
            (digest,) = groups
            if digest is None or expected is None or digest == expected:
                return digest
        elif not groups:
            return expected

        def name(d: str | None) -> str:
            if d is None:
                return "no configuration record"
            return f"configuration {d[:12]}" + (" (the manifest's)" if d == expected else "")

        parts = []
        for d, fids in sorted(groups.items(), key=lambda kv: (kv[0] != expected, str(kv[0]))):
            shown = ", ".join(fids[:5]) + (f" ... ({len(fids)} frames)" if len(fids) > 5 else "")
            parts.append(f"{name(d)}: {shown}")
        if len(groups) == 1 and expected is not None:
            parts.append(f"but the manifest says configuration {expected[:12]}")
        raise MixedPredictionsError(
            f"{self.anomaly_dir(key)} holds frames of more than one configuration ("
            + "; ".join(parts)
            + "); rerun `oodbench run` with the intended configuration to recompute the others, "
            "or --overwrite"
        )

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

    def missing_semantic(self, key: str, frame_ids: Iterable[str]) -> list[str]:
        """Frame ids without a stored semantic map."""
        d = self.semantic_dir(key)
        present = {p.stem for p in d.glob("*.png")} if d.is_dir() else set()
        return [f for f in frame_ids if f not in present]

    def has_semantic(self, key: str, frame_ids: Iterable[str]) -> bool:
        return not self.missing_semantic(key, frame_ids)
