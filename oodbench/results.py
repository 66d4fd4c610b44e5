"""Result records: one JSON file per (method, split), the only input of leaderboards.

A record holds the metrics with their protocol and its version, and everything needed to tell two
numbers apart later: oodbench version and git commit, method hyperparameters, checkpoint sha256,
which distribution provided the method (plugins), a fingerprint of the evaluated data (frame ids
and decoded-label hashes), whether the data was synthetic, device and wall time.
"""
from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .atomic import atomic_write_json

__all__ = ["Result", "DataFingerprint", "save_result", "load_results", "result_filename", "git_commit"]

SCHEMA_VERSION = 1


class DataFingerprint:
    """sha256 over ``(frame id, sha256 of decoded label bytes)`` in evaluation order.

    Per-frame digests are kept (32 bytes a frame) so shards can be merged in rank order
    (``state_dict`` / ``from_state`` / ``merge``, like the metric accumulators).
    """

    def __init__(self) -> None:
        self.frames: list[tuple[str, str]] = []

    def update(self, frame_id: str, label: Any) -> None:
        import numpy as np

        arr = np.ascontiguousarray(label)
        h = hashlib.sha256(str(arr.shape).encode())
        h.update(arr.tobytes())
        self.frames.append((frame_id, h.hexdigest()))

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def merge(self, other: "DataFingerprint") -> "DataFingerprint":
        self.frames.extend(other.frames)
        return self

    def state_dict(self) -> dict:
        return {"frames": list(self.frames)}

    @classmethod
    def from_state(cls, state: dict) -> "DataFingerprint":
        fp = cls()
        fp.frames = [tuple(x) for x in state["frames"]]
        return fp

    @classmethod
    def merge_states(cls, states: list[dict]) -> "DataFingerprint":
        """Merge state dicts (e.g. gathered from all ranks) in list order, like the accumulators."""
        merged = cls()
        for state in states:
            merged.merge(cls.from_state(state))
        return merged

    def hexdigest(self) -> str:
        h = hashlib.sha256()
        for fid, digest in self.frames:
            h.update(fid.encode() + b"\0" + digest.encode())
        return h.hexdigest()


@dataclass
class Result:
    """One evaluation result (method x split)."""

    method: str
    dataset: str
    benchmark: str
    protocol: str
    protocol_version: str
    metrics: dict[str, float]
    num_frames: int
    synthetic: bool = False
    hparams: dict[str, Any] = field(default_factory=dict)
    checkpoint_sha256: str | None = None
    plugin: dict[str, str] = field(default_factory=dict)
    data_fingerprint: str = ""
    data_root: str = ""
    predictions: str = ""
    device: str = ""
    wall_time_s: float | None = None
    oodbench_version: str = ""
    git_commit: str | None = None
    created: str = ""
    notes: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if not self.oodbench_version:
            from . import __version__

            self.oodbench_version = __version__
        if self.git_commit is None:
            self.git_commit = git_commit()
        if not self.created:
            self.created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
        if not self.device:
            self.device = platform.processor() or platform.machine()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Result":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


def result_filename(method: str, dataset: str) -> str:
    return f"{method}__{dataset}.json"


def save_result(result: Result, results_dir: str | os.PathLike) -> Path:
    """Atomically write ``result`` as ``<results_dir>/<method>__<dataset>.json``."""
    path = Path(results_dir) / result_filename(result.method, result.dataset)
    atomic_write_json(path, result.to_dict())
    return path


def load_results(results_dir: str | os.PathLike) -> list[Result]:
    """Every result record under ``results_dir`` (recursively), sorted by dataset then method."""
    out = []
    for path in sorted(Path(results_dir).rglob("*.json")):
        try:
            d = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a readable result record ({exc})") from exc
        if not isinstance(d, dict) or "metrics" not in d or "method" not in d:
            continue  # other JSON files (e.g. published data) are not results
        out.append(Result.from_dict(d))
    return sorted(out, key=lambda r: (r.dataset, r.method))


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """Commit of the oodbench source tree, if it is a git checkout (``None`` for wheels)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    commit = out.stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True, text=True, timeout=5,
    )
    return commit + ("-dirty" if dirty.stdout.strip() else "")


def dumps(result: Result) -> str:
    return json.dumps(result.to_dict(), indent=2)
