"""Official submission archives.

SMIYC (``benchmarks.md`` §4.1): the organisers evaluate the tree the official wrapper writes,
``anomaly_p/<method>/<persistence name>/<frame-id>.hdf5`` with one float16 dataset ``value`` of
the full image resolution. :func:`build_smiyc_submission` checks that every frame of each requested
split is present, readable, float16 and of the image's size before it writes the zip (atomically).
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from .atomic import atomic_path
from .store import PredictionError, PredictionStore

__all__ = ["SMIYC_SUBMISSION_SPLITS", "build_smiyc_submission", "SubmissionError"]

#: the leaderboard splits the SMIYC server evaluates
SMIYC_SUBMISSION_SPLITS = ("smiyc-anomaly-test", "smiyc-obstacle-test", "smiyc-laf-noknown")


class SubmissionError(PredictionError):
    """The prediction tree is incomplete or malformed; nothing was written."""


def _image_size(split, fid: str) -> tuple[int, int]:
    frame = split.load(fid)
    return frame.shape


def build_smiyc_submission(
    predictions: str | os.PathLike,
    method: str,
    out_zip: str | os.PathLike,
    splits: Sequence,
    progress: bool = True,
) -> dict[str, int]:
    """Validate and pack the SMIYC prediction tree of ``method`` for ``splits``.

    Returns the number of files per persistence key. Raises :class:`SubmissionError` listing
    every problem (missing frames, wrong dtype or shape, unreadable files) without writing.
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
        for fid in tqdm(ids, desc=f"checking {split.name}", disable=not progress, leave=False):
            path = store.anomaly_path(split.key, fid)
            try:
                import h5py

                with h5py.File(path, "r") as fh:
                    ds = fh["value"]
                    dtype, shape = ds.dtype, tuple(int(d) for d in ds.shape if d != 1)  # squeezed, as read
            except Exception as exc:
                problems.append(f"{path}: unreadable ({exc})")
                continue
            if dtype != np.float16:
                problems.append(f"{path}: dtype {dtype}, SMIYC expects float16")
            want = _image_size(split, fid)
            if shape != want:
                problems.append(f"{path}: shape {shape} != image size {want}")
            arcname = f"anomaly_p/{method}/{split.key}/{fid}.hdf5"
            files[arcname] = path
        counts[split.key] = counts.get(split.key, 0) + len(ids)
    if problems:
        shown = "\n  ".join(problems[:30])
        more = f"\n  ... and {len(problems) - 30} more" if len(problems) > 30 else ""
        raise SubmissionError(f"submission not written, {len(problems)} problem(s):\n  {shown}{more}")
    with atomic_path(out_zip) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for arcname in sorted(files):
                zf.write(files[arcname], arcname)
    return counts
