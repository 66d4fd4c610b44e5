"""Official submission archives.

SMIYC (``docs/benchmarks.md`` §4.1): the organisers evaluate the tree the official wrapper writes,
``anomaly_p/<method>/<persistence name>/<frame-id>.hdf5`` with one float16 dataset ``value`` of
the full image resolution. :func:`build_smiyc_submission` reads every frame of each requested split
through :meth:`oodbench.store.PredictionStore.read_anomaly` — the reader evaluation uses, so a frame
is packed only if ``oodbench evaluate`` would accept it (``value`` present and readable, finite) and
it is float16 of the image's size — and writes the zip (atomically) only when every frame passed.

Prediction files under a submitted folder that belong to no submitted frame are left out of the
archive and listed in a warning, not refused: the persistence folder is shared by a track's
validation and test splits (``AnomalyTrack-all`` holds both), so such files are normal after
validating, and since they are never packed they cannot change what the organisers score.
"""
from __future__ import annotations

import os
import sys
import zipfile
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .atomic import atomic_path
from .datasets import input_digest
from .store import MixedPredictionsError, PredictionError, PredictionStore

__all__ = ["SMIYC_SUBMISSION_SPLITS", "SMIYC_SCORE_DTYPE", "build_smiyc_submission", "SubmissionError"]

#: the leaderboard splits the SMIYC server evaluates
SMIYC_SUBMISSION_SPLITS = ("smiyc-anomaly-test", "smiyc-obstacle-test", "smiyc-laf-noknown")

#: the dtype of ``value`` the official wrapper writes (``docs/benchmarks.md`` §4.1)
SMIYC_SCORE_DTYPE = np.float16

_SHOWN = 30  # problems listed in one error message
_SHOWN_STRAYS = 10


class SubmissionError(PredictionError):
    """The prediction tree is incomplete or malformed; nothing was written."""


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def _image_size(split, fid: str) -> tuple[int, int]:
    frame = split.load(fid)
    return frame.shape


def _strays(store: PredictionStore, splits: Sequence) -> list[tuple[Path, list[str], list[str]]]:
    """``(folder, split names, file names)`` for ``.hdf5`` files that are no submitted frame."""
    frames: dict[str, set[str]] = {}
    names: dict[str, list[str]] = {}
    for split in splits:
        frames.setdefault(split.key, set()).update(split.frame_ids())
        names.setdefault(split.key, []).append(split.name)
    out = []
    for key, ids in frames.items():
        folder = store.anomaly_dir(key)
        extra = sorted(p.name for p in folder.glob("*.hdf5") if p.stem not in ids) if folder.is_dir() else []
        if extra:
            out.append((folder, names[key], extra))
    return out


def _provenance_problems(store: PredictionStore, split, ids: Sequence[str], allow_untrained: bool) -> list[str]:
    """What the organisers would score as this method although it is not one trained configuration."""
    problems = []
    manifest = store.read_run_manifest(split.key) or {}
    if manifest.get("untrained") and not allow_untrained:
        problems.append(f"{split.name}: {store.anomaly_dir(split.key)} was predicted with untrained weights "
                        "(run --allow-untrained); pass --allow-untrained to submit it anyway")
    try:
        store.check_single_config(split.key, ids)
        stale = store.changed_inputs(split.key, ids, partial(input_digest, split))
    except MixedPredictionsError as exc:
        problems.append(f"{split.name}: {exc}")
    except PredictionError:
        pass  # an unreadable frame: named by the per-frame check below
    else:
        if stale:
            problems.append(f"{split.name}: {len(stale)} frames were predicted from other image files than "
                            f"{split.root} holds now (e.g. {', '.join(stale[:5])}); rerun `oodbench run`")
    return problems


def build_smiyc_submission(
    predictions: str | os.PathLike,
    method: str,
    out_zip: str | os.PathLike,
    splits: Sequence,
    progress: bool = True,
    log: Callable[[str], None] = _stderr,
    allow_untrained: bool = False,
) -> dict[str, int]:
    """Validate and pack the SMIYC prediction tree of ``method`` for ``splits``.

    The archive holds exactly one ``anomaly_p/<method>/<key>/<frame>.hdf5`` per frame of each split
    and nothing else; stray prediction files are reported through ``log`` and left out.

    Returns the number of files per persistence key. Raises :class:`SubmissionError` listing
    every problem without writing: missing frames; unreadable, non-finite, wrong-dtype or
    wrong-shape files (each named); frames of more than one configuration in one folder (an
    interrupted ``run --overwrite`` with another checkpoint) or predicted from other image files
    than the split holds now (the checks ``evaluate`` applies); and a run on untrained weights (its
    run manifest says so) unless ``allow_untrained``.
    """
    from tqdm.auto import tqdm

    store = PredictionStore(predictions, method)
    problems: list[str] = []
    files: dict[str, Path] = {}
    counts: dict[str, int] = {}
    for split in splits:
        if split.persistence_name is None:
            raise SubmissionError(f"{split.name} is not a SMIYC split")
        ids = split.frame_ids()
        missing = store.missing(split.key, ids)
        if missing:
            problems.append(
                f"{split.name}: {len(missing)} of {len(ids)} frames missing under "
                f"{store.anomaly_dir(split.key)} (e.g. {', '.join(missing[:5])})"
            )
            continue
        problems += _provenance_problems(store, split, ids, allow_untrained)
        for fid in tqdm(ids, desc=f"checking {split.name}", disable=not progress, leave=False):
            try:
                store.read_anomaly(split.key, fid, shape=_image_size(split, fid), dtype=SMIYC_SCORE_DTYPE)
            except PredictionError as exc:
                problems.append(str(exc))
                continue
            files[f"anomaly_p/{method}/{split.key}/{fid}.hdf5"] = store.anomaly_path(split.key, fid)
        counts[split.key] = counts.get(split.key, 0) + len(ids)
    if problems:
        shown = "\n  ".join(problems[:_SHOWN])
        more = f"\n  ... and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
        raise SubmissionError(f"submission not written, {len(problems)} problem(s):\n  {shown}{more}")
    for folder, names, extra in _strays(store, splits):
        listed = ", ".join(extra[:_SHOWN_STRAYS]) + (" ..." if len(extra) > _SHOWN_STRAYS else "")
        log(f"warning: {len(extra)} file(s) under {folder} belong to no frame of {', '.join(names)} and are "
            f"left out of the archive (a track's validation frames share its folder): {listed}")
    with atomic_path(out_zip) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for arcname in sorted(files):
                zf.write(files[arcname], arcname)
    return counts
