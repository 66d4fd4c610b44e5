"""``generate()``: write the whole synthetic benchmark atomically and idempotently.

Everything is written into a private staging directory next to ``out_dir`` and published with one
``os.rename``; a tree whose ``oodbench_manifest.json`` has the same generator string (version and
seed), size and frame counts is reused untouched.  Same seed -> byte-identical files (with the same
numpy / Pillow / zlib / libjpeg / libwebp versions, which the manifest records).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import PIL

from oodbench.errors import OodbenchError, UsageError

from .benchmarks import (write_anomaly_track, write_fishyscapes_static, write_lost_and_found, write_obstacle_track,
                         write_road_anomaly, write_streethazards)
from .extra import EXTRA_SETS, write_extra
from .training import write_cityscapes, write_coco
from .world import SYNTH_VERSION, TRAIN_IDS_PRESENT
from .writers import TreeWriter

__all__ = ["generate", "generator_string", "read_manifest", "resolve_split_sizes", "MANIFEST_NAME",
           "OFFICIAL_VALIDATION_SIZES", "SIZED_SPLITS", "SynthExistsError"]

MANIFEST_NAME = "oodbench_manifest.json"

#: where each split lives under the data root (for humans and adapter tests)
LAYOUTS = {
    "smiyc-anomaly-val": "dataset_AnomalyTrack", "smiyc-anomaly-test": "dataset_AnomalyTrack",
    "smiyc-obstacle-val": "dataset_ObstacleTrack", "smiyc-obstacle-test": "dataset_ObstacleTrack",
    "smiyc-laf-noknown": "dataset_LostAndFound",
    "fishyscapes-laf-val": "fishyscapes_lostandfound + dataset_LostAndFound",
    "fishyscapes-static-val": "fs_val_v3 + cityscapes/leftImg8bit/val",
    "road-anomaly": "RoadAnomaly_jpg", "streethazards-test": "StreetHazards/test",
}


class SynthExistsError(OodbenchError, FileExistsError):
    """``out_dir`` holds something else than the requested synthetic tree."""


def generator_string(seed: int) -> str:
    return f"oodbench.synth {SYNTH_VERSION} seed={seed}"


def read_manifest(root: str | os.PathLike) -> dict | None:
    """The synthetic manifest under ``root``, or ``None`` when there is none (a real data root)."""
    p = Path(root) / MANIFEST_NAME
    if not p.is_file():
        return None
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SynthExistsError(f"{p}: unreadable synthetic manifest ({exc}); delete the folder and regenerate") from exc
    return doc if isinstance(doc, dict) and doc.get("synthetic") is True else None


#: the splits whose frame count is a parameter (everything else has a fixed, hand-picked frame list)
SIZED_SPLITS = ("smiyc-anomaly-val", "smiyc-obstacle-val", "fishyscapes-static-val", "streethazards-test")

#: frame counts of the released validation splits (``docs/benchmarks.md`` §1.0), for
#: ``split_sizes=OFFICIAL_VALIDATION_SIZES``: pooled metrics over a handful of frames hang on one or
#: two objects (on 8 ObstacleTrack frames one grey animal set every method's 95 %-TPR threshold)
OFFICIAL_VALIDATION_SIZES = {"smiyc-anomaly-val": 10, "smiyc-obstacle-val": 30, "fishyscapes-static-val": 30}


def generate(out_dir: str | os.PathLike, seed: int = 0, size: tuple[int, int] = (128, 256), *,
             n_train: int = 150, n_val: int | None = None, n_coco: int = 48, n_per_split: int = 8,
             split_sizes: Mapping[str, int] | None = None, extra: tuple[str, ...] = (), force: bool = False,
             log: Callable[[str], None] | None = None) -> Path:
    """Write the synthetic benchmark under ``out_dir`` and return ``out_dir``.

    Args:
        out_dir: data root to create (its parent must exist or be creatable).
        seed: non-negative integer; the only source of randomness.
        size: ``(H, W)`` of the 2:1 frames (Cityscapes, Lost & Found, AnomalyTrack); the 16:9
            benchmarks (ObstacleTrack, RoadAnomaly, StreetHazards) use ``(round(W*9/16), W)``.
        n_train / n_val: Cityscapes-format train / val images (``n_val`` default: 24, or the FS
            Static frame count when that is larger, since FS Static pastes onto val frames).
        n_coco: COCO-format images (about 60 % survive the outlier filter).
        n_per_split: default frame count of SMIYC AnomalyTrack / ObstacleTrack validation and FS
            Static (StreetHazards gets ``n_per_split // 2`` per town).
        split_sizes: frame counts per split of :data:`SIZED_SPLITS` overriding ``n_per_split``
            (e.g. :data:`OFFICIAL_VALIDATION_SIZES`); StreetHazards counts frames per town.
            SMIYC frames are keyed by their id, so a larger count there only adds frames (FS Static
            draws its val frames by a permutation and StreetHazards numbers across towns, so
            their frames change with the count).
        extra: extra training sets to add (:data:`.extra.EXTRA_SETS`: ``"vistas-v1.2"``,
            ``"vistas-v2.0"``, ``"wilddash2"``) in their official layouts (``vistas/``,
            ``wd_public_02/``); none by default, which leaves the tree byte-identical to before.
        force: replace an existing *synthetic* tree of another seed/version/size (a folder
            without a synthetic manifest is never deleted).
        log: optional callable receiving progress lines.

    Raises:
        SynthExistsError: ``out_dir`` exists with other content and ``force`` is off (or it is
            not a synthetic tree).
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise UsageError(f"seed must be a non-negative integer, got {seed!r}")
    h, w = (int(s) for s in size)
    if h < 64 or w < 64:
        raise UsageError(f"size must be at least 64x64, got {h}x{w}")
    sizes = resolve_split_sizes(n_per_split, split_sizes)
    n_val = max(24, sizes["fishyscapes-static-val"]) if n_val is None else int(n_val)
    if n_val < sizes["fishyscapes-static-val"]:
        raise UsageError(f"n_val ({n_val}) must be >= the fishyscapes-static-val frame count "
                         f"({sizes['fishyscapes-static-val']}): FS Static pastes onto val frames")
    params = {"size": [h, w], "n_train": n_train, "n_val": n_val, "n_coco": n_coco, "split_sizes": sizes}
    extra = tuple(sorted(set(extra)))
    unknown = sorted(set(extra) - set(EXTRA_SETS))
    if unknown:
        raise UsageError(f"extra: unknown set(s) {unknown}; choose from {', '.join(EXTRA_SETS)}")
    if extra:  # only then: trees generated without extras keep their params (and are reused)
        if n_train < 3 or n_val < 2:
            raise UsageError("extra sets re-encode Cityscapes train frames 0..2 and val frames 0..1: "
                             "n_train must be >= 3 and n_val >= 2")
        params["extra"] = list(extra)
    out = Path(out_dir).expanduser().absolute()
    say = log or (lambda _msg: None)
    existing = read_manifest(out) if out.is_dir() else None
    if existing and existing.get("generator") == generator_string(int(seed)) and existing.get("params") == params:
        say(f"{out}: synthetic benchmark already present ({existing['generator']}); nothing to do")
        return out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if existing is None:
            raise SynthExistsError(f"{out} exists and is not a synthetic oodbench tree; choose an empty or new folder")
        if not force:
            raise SynthExistsError(
                f"{out} holds another synthetic tree ({existing.get('generator')}, {existing.get('params')}); "
                "pass force=True (--force) to replace it"
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.synth-", dir=out.parent))
    try:
        t0 = time.perf_counter()
        manifest = _write_all(staging, int(seed), (h, w), params, say)
        _publish(staging, out, manifest["generator"], params)
        say(f"wrote {manifest['files']} files to {out} in {time.perf_counter() - t0:.1f} s")
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out


def resolve_split_sizes(n_per_split: int, split_sizes: Mapping[str, int] | None = None) -> dict[str, int]:
    """Frame count per split of :data:`SIZED_SPLITS` (StreetHazards: per town); unknown names and
    counts below 1 are errors."""
    sizes = {name: int(n_per_split) for name in SIZED_SPLITS}
    sizes["streethazards-test"] = max(int(n_per_split) // 2, 1)
    for name, n in (split_sizes or {}).items():
        if name not in sizes:
            raise UsageError(f"split_sizes: {name!r} has no size parameter; sized splits: {', '.join(SIZED_SPLITS)}")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise UsageError(f"split_sizes[{name!r}] must be an integer >= 1, got {n!r}")
        sizes[name] = int(n)
    return sizes


def _write_all(root: Path, seed: int, size: tuple[int, int], params: dict, say) -> dict:
    h, w = size
    wide = (int(round(w * 9 / 16)), w)
    wr = TreeWriter(root)
    counts: dict[str, int] = {}
    excluded: dict[str, list[str]] = {}

    def add(res: dict) -> None:
        counts.update(res["counts"])
        excluded.update(res["excluded_on_disk"])

    say("cityscapes-format training set")
    val_frames = write_cityscapes(wr, seed, size, params["n_train"], params["n_val"])
    say("coco-format outlier source")
    coco_stats = write_coco(wr, seed, params["n_coco"])
    say("evaluation splits")
    sizes = params["split_sizes"]
    add(write_anomaly_track(wr, seed, size, sizes["smiyc-anomaly-val"]))
    add(write_obstacle_track(wr, seed, wide, sizes["smiyc-obstacle-val"]))
    add(write_lost_and_found(wr, seed, size))
    add(write_fishyscapes_static(wr, seed, val_frames, sizes["fishyscapes-static-val"]))
    add(write_road_anomaly(wr, seed, wide))
    add(write_streethazards(wr, seed, wide, sizes["streethazards-test"]))
    extra_info = {}
    if params.get("extra"):
        say("extra training sets: " + ", ".join(params["extra"]))
        extra_info = write_extra(wr, seed, size, tuple(params["extra"]))
    manifest = {
        "synthetic": True,
        "generator": generator_string(seed),
        "seed": seed,
        "params": params,
        "counts": dict(sorted(counts.items())),
        "excluded_on_disk": dict(sorted(excluded.items())),
        "layouts": LAYOUTS,
        "train": {
            "cityscapes": {"root": "cityscapes", "train": params["n_train"], "val": params["n_val"],
                           "train_ids_present": list(TRAIN_IDS_PRESENT)},
            "coco": {"root": "coco", **coco_stats},
            **extra_info,
        },
        "files": len(wr.files) + 1,
        "libraries": {"numpy": np.__version__, "pillow": PIL.__version__},
    }
    wr.json(MANIFEST_NAME, manifest)
    return manifest


def _publish(staging: Path, out: Path, generator: str, params: dict) -> None:
    """Move the finished staging tree onto ``out`` (one rename; an old tree is swapped out first)."""
    trash = None
    if out.exists():
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        else:
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.rename(out, trash / "tree")
    try:
        os.rename(staging, out)
    except OSError:
        # another process published first: fine if it wrote the same tree
        other = read_manifest(out) if out.is_dir() else None
        if not (other and other.get("generator") == generator and other.get("params") == params):
            if trash is not None and not out.exists():
                os.rename(trash / "tree", out)  # put the previous tree back
                shutil.rmtree(trash, ignore_errors=True)
            raise
    if trash is not None:
        with contextlib.suppress(OSError):
            shutil.rmtree(trash)
