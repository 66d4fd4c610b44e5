"""``oodbench fit``: fit a method's statistics on the training split, save the state with its provenance.

``oodbench fit --method sml --segmenter S --checkpoint C --data-root R --out sml.safetensors`` builds
the method exactly as ``oodbench run`` would, streams :class:`~oodbench.methods.FitBatch` batches of
the Cityscapes training split (normalised by the method's own :meth:`~oodbench.methods.Method.preprocessing`,
the function ``run`` applies) into :meth:`~oodbench.methods.Method.fit`, and writes
:meth:`~oodbench.methods.Method.state_dict_fitted` as a safetensors file whose metadata
(``"oodbench"`` key, JSON) records what was fitted on what: method, registry provenance, hparams,
segmenter checkpoint sha256, training split, number of images, a fingerprint of the data read,
oodbench version and commit.

``oodbench run --method sml ... --state sml.safetensors`` loads it (:func:`load_state_into`): the file
must belong to this method and to the same segmenter weights; its sha256 becomes part of the
prediction fingerprint and of every result record.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from .cli_config import add_command, arg
from .cli_options import MethodOptions, ProgressOptions
from .cli_support import positive_int
from .errors import OodbenchError, UsageError

__all__ = ["FIT_SPLITS", "FitConfig", "iter_fit_batches", "fit_method", "save_state", "read_state", "load_state_into",
           "add_fit_parser", "StateError"]

#: ``--split`` values: name -> Cityscapes split folder
FIT_SPLITS = {"cityscapes-train": "train"}
META_KEY = "oodbench"


class StateError(OodbenchError, ValueError):
    """A fitted-state file is unreadable or does not belong to the method / weights it is loaded into."""


class _TrainImages(torch.utils.data.Dataset):
    def __init__(self, data, n: int) -> None:
        self.data, self.n = data, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        image, labels = self.data[i]
        frame_id = Path(self.data.files[i][0]).name
        return frame_id, torch.from_numpy(np.array(image, copy=True)), torch.from_numpy(np.array(labels, copy=True))


def iter_fit_batches(method, data_root: str | os.PathLike, split: str = "cityscapes-train", batch_size: int = 4,
                     max_images: int | None = None, num_workers: int = 0,
                     fingerprint: "hashlib._Hash | None" = None, counter: dict | None = None) -> Iterator:
    """:class:`~oodbench.methods.FitBatch` batches of ``split`` for ``method`` (on its device).

    Images of one batch share a size (a size change starts a new batch). ``fingerprint`` (a
    ``hashlib`` object) is updated with every frame's name, image and label bytes, in order;
    ``counter["images"]`` counts the frames read.
    """
    from .datasets.cityscapes import CityscapesSegmentation
    from .methods import FitBatch
    from .preprocess import normaliser

    if split not in FIT_SPLITS:
        raise UsageError(f"--split: unknown training split {split!r}; choose from {', '.join(FIT_SPLITS)}")
    data = CityscapesSegmentation(data_root, FIT_SPLITS[split])
    n = len(data) if max_images is None else min(len(data), max_images)
    device = method.device
    normalise = normaliser(method, device)
    loader = torch.utils.data.DataLoader(_TrainImages(data, n), batch_size=None, num_workers=num_workers,
                                         pin_memory=device.type == "cuda")

    def emit(ids, images, labels):
        if counter is not None:
            counter["images"] = counter.get("images", 0) + len(ids)
        return FitBatch(image=normalise(torch.stack(images)),
                        labels=torch.stack(labels).to(device, torch.int64), frame_ids=tuple(ids))

    ids: list[str] = []
    images: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    for fid, img, lab in loader:
        if fingerprint is not None:
            fingerprint.update(fid.encode() + b"\0" + str(tuple(img.shape)).encode())
            fingerprint.update(img.numpy().tobytes())
            fingerprint.update(lab.numpy().tobytes())
        if images and (img.shape != images[0].shape or len(images) == batch_size):
            yield emit(ids, images, labels)
            ids, images, labels = [], [], []
        ids.append(fid)
        images.append(img)
        labels.append(lab)
    if images:
        yield emit(ids, images, labels)


def fit_method(method, method_name: str, data_root: str | os.PathLike, split: str = "cityscapes-train",
               batch_size: int = 4, max_images: int | None = None, num_workers: int = 0,
               progress: bool = False) -> dict[str, Any]:
    """Fit ``method`` in place on ``split``; returns the provenance that :func:`save_state` stores."""
    from . import __version__
    from .methods import METHODS
    from .results import git_commit

    if not method.requires_fit:
        raise UsageError(f"method {method_name!r} has nothing to fit (requires_fit is False); "
                         f"run it directly with `oodbench run --method {method_name}`")
    command = method.fit_command.format(name=method_name)
    if not command.startswith("oodbench fit"):
        raise UsageError(f"method {method_name!r} is not fitted by `oodbench fit`: {command}")
    digest = hashlib.sha256()
    counter: dict[str, int] = {}
    t0 = time.perf_counter()
    batches = iter_fit_batches(method, data_root, split, batch_size=batch_size, max_images=max_images,
                               num_workers=num_workers, fingerprint=digest, counter=counter)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc=f"fit {method_name}", unit="batch")
    with torch.inference_mode():
        method.fit(batches)
    if method.requires_fit:
        raise RuntimeError(f"method {method_name!r}: fit() returned without clearing requires_fit (a plugin bug)")
    root = Path(data_root)
    return {
        "format": "oodbench-fitted-state/1",
        "method": method.registry_name or method_name,
        "class": f"{type(method).__module__}.{type(method).__qualname__}",
        "plugin": METHODS.get(method.registry_name or method_name).provenance,
        "hparams": method.hparams(),
        "checkpoint_sha256": method.checkpoint_sha256,
        "preprocessing": method.preprocessing().to_dict(),
        "training_split": split,
        "data_root": str(root.resolve()),
        "num_images": counter.get("images", 0),
        "max_images": max_images,
        "data_fingerprint": digest.hexdigest(),
        "oodbench_version": __version__,
        "git_commit": git_commit(),
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "fit_wall_time_s": round(time.perf_counter() - t0, 3),
    }


def save_state(path: str | os.PathLike, method, meta: dict[str, Any]) -> str:
    """Write ``method.state_dict_fitted()`` and ``meta`` to ``path`` (safetensors, atomically); returns its sha256."""
    from safetensors.torch import save_file

    from .atomic import atomic_path

    tensors = {k: v.detach().cpu().contiguous() for k, v in method.state_dict_fitted().items()}
    if not tensors:
        raise ValueError(f"method {meta.get('method')!r} returned an empty fitted state; nothing to save")
    meta = {**meta, "tensors": {k: [str(v.dtype).replace("torch.", ""), list(v.shape)] for k, v in tensors.items()}}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(meta, sort_keys=True)})
    return _file_sha256(path)


def _file_sha256(path: str | os.PathLike) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def read_state(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any], str]:
    """``(tensors, provenance, sha256)`` of a state file written by :func:`save_state`."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise StateError(f"--state {path}: no such file (write one with `oodbench fit ... --out {path}`)")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta_text = (fh.metadata() or {}).get(META_KEY)
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # safetensors raises its own error types
        raise StateError(f"--state {path}: not a safetensors file ({str(exc).splitlines()[0]})") from exc
    if meta_text is None:
        raise StateError(f"--state {path}: no oodbench provenance in its metadata (not written by `oodbench fit`)")
    try:
        meta = json.loads(meta_text)
    except json.JSONDecodeError as exc:
        raise StateError(f"--state {path}: unreadable provenance ({exc})") from exc
    return tensors, meta, _file_sha256(path)


def load_state_into(method, path: str | os.PathLike, method_name: str) -> dict[str, Any]:
    """Load a fitted state into ``method`` after checking that it was fitted for it; returns its provenance.

    Refused (:class:`StateError`): a state of another method, or fitted on other segmenter weights
    (checkpoint sha256) or another segmenter.
    """
    tensors, meta, sha = read_state(path)
    name = method.registry_name or method_name
    if meta.get("method") != name:
        raise StateError(f"--state {path}: fitted for method {meta.get('method')!r}, not {name!r}")
    if meta.get("checkpoint_sha256") != method.checkpoint_sha256:
        raise StateError(f"--state {path}: fitted on segmenter checkpoint sha256 {meta.get('checkpoint_sha256')}, "
                         f"but this run's --checkpoint has {method.checkpoint_sha256}; refit or pass the same "
                         "--checkpoint")
    fitted_seg, seg = (meta.get("hparams") or {}).get("segmenter"), method.hparams().get("segmenter")
    if fitted_seg is not None and seg is not None and fitted_seg != seg:
        raise StateError(f"--state {path}: fitted with segmenter {fitted_seg!r}, this run uses {seg!r}")
    try:
        method.load_fitted(tensors)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise StateError(f"--state {path}: {exc}") from exc
    method.fitted_state_sha256 = sha
    return meta


# ---------------------------------------------------------------------------------------------
def _cmd_fit(args: argparse.Namespace) -> int:
    from .cli_support import CLIError, build_method, check_device, method_kwargs

    check_device(args.device)
    method = build_method(args.method, method_kwargs(args))
    # anything missing besides the fit itself (e.g. random segmenter weights) is refused first
    from .methods import Method

    reason = method.untrained_reason()
    if reason is not None and reason != Method.untrained_reason(method) and not args.allow_untrained:
        raise CLIError(f"{args.method}: {reason}; or pass --allow-untrained to fit it anyway")
    method.to(args.device)
    torch.set_grad_enabled(False)
    meta = fit_method(method, args.method, args.data_root or os.environ.get("OODBENCH_DATA", ""), args.split,
                      batch_size=args.batch_size, max_images=args.max_images, num_workers=args.num_workers,
                      progress=_progress(args))
    sha = save_state(args.out, method, meta)
    print(f"fitted {args.method} on {meta['num_images']} images of {args.split}; wrote {args.out} (sha256 {sha})",
          file=sys.stderr)
    print(f"use it: oodbench run --method {args.method} --state {args.out} ...", file=sys.stderr)
    return 0


def _progress(args: argparse.Namespace) -> bool:
    from .cli_support import want_progress

    return want_progress(args)


@dataclass(kw_only=True)
class FitConfig:
    """``oodbench fit``: the method, the training split, and where its fitted state goes (the parser
    is generated from it; :func:`_cmd_fit` reads the same names)."""

    method: MethodOptions
    data_root: str | None = field(default=None, metadata=arg("data root holding cityscapes/ (default: $OODBENCH_DATA)"))
    split: str = field(default="cityscapes-train", metadata=arg("training split", choices=sorted(FIT_SPLITS)))
    max_images: int | None = field(default=None, metadata=arg("fit on the first N images (quick fits)",
                                                              parse=positive_int))
    batch_size: int = field(default=4, metadata=arg("images per forward pass", parse=positive_int))
    num_workers: int = field(default=0, metadata=arg("DataLoader worker processes"))
    device: str = field(default="cpu", metadata=arg("torch device: cpu, cuda, cuda:1"))
    out: str = field(metadata=arg("state file to write (safetensors)"))
    allow_untrained: bool = field(default=False, metadata=arg(
        "fit on a segmenter without trained weights (no --checkpoint)", action="store_true"))
    display: ProgressOptions = field(default_factory=ProgressOptions)


def add_fit_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``oodbench fit`` (flags generated from its config dataclass; the handler reads the same names)."""
    return add_command(sub, "fit", FitConfig, _cmd_fit,
                       help="fit a method's statistics on the training split and save the state",
                       description="Fit a method (requires_fit) on batches of the training split, normalised "
                                   "exactly like `oodbench run`, and save its state (safetensors + provenance) "
                                   "for `oodbench run --state`.")
