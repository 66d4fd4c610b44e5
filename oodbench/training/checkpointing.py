"""Atomic training checkpoints that load with ``torch.load(..., weights_only=True)``.

(Named ``checkpointing``: full training state for resuming; model weights alone are read by
:mod:`oodbench.segmenters.weights`.)

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts -- the types the safe
unpickler accepts -- written through :func:`oodbench.atomic.atomic_path` (``torch.save`` to a
temporary file in the same folder, fsync, rename), so a kill during the write leaves the previous
file intact. RNG states are stored as tensors (:func:`rng_state` / :func:`set_rng_state`).

Loading never unpickles arbitrary objects: anything else in the file is refused with an error
naming the file.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oodbench.atomic import atomic_path
from oodbench.errors import CheckpointError

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state", "find_resume"]


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike) -> Path:
    """Atomically write ``payload`` to ``path`` with ``torch.save``."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu", required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Load a training checkpoint through the one safe reader
    (:func:`oodbench.segmenters.weights.read_checkpoint`); check that the ``required`` keys are present."""
    from oodbench.segmenters.weights import read_checkpoint

    p = Path(path)
    obj, _ = read_checkpoint(p, map_location=map_location, sha256=False)
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {p} holds a {type(obj).__name__}, expected a dict")
    missing = [k for k in required if k not in obj]
    if missing:
        raise CheckpointError(f"checkpoint {p} lacks keys {missing} (has {sorted(obj)[:20]})")
    return obj


def rng_state() -> dict[str, Any]:
    """Python, NumPy-global and torch (CPU + CUDA) RNG states as tensors and ints."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": int(py_version), "state": torch.tensor(py_state, dtype=torch.int64), "gauss": py_gauss},
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (CUDA states only when the device count matches)."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npst = state["numpy"]
    np.random.set_state(
        (npst["name"], npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"], npst["gauss"])
    )
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


def find_resume(out_dir: str | os.PathLike, resume: str | os.PathLike | bool | None) -> Path | None:
    """Which checkpoint to resume from.

    ``resume`` may be a path (must exist), ``True``/``"auto"`` (``out_dir/last.pth`` if present,
    else start fresh) or ``False``/``None`` (start fresh).
    """
    if resume in (None, False, "", "no", "false"):
        return None
    if resume in (True, "auto"):
        last = Path(out_dir) / "last.pth"
        return last if last.is_file() else None
    p = Path(resume)
    if not p.is_file():
        raise CheckpointError(f"--resume {p}: no such checkpoint")
    return p
