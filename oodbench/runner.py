"""Predict -> store -> evaluate -> result record, for one method on one or more splits.

Inference overlaps with data loading (a ``DataLoader`` decodes frames in workers, pinned memory on
CUDA) and with storing (HDF5 writes run in a background thread), and the host synchronises once
per batch, not per image. Frames already stored are skipped (resumable), unless ``overwrite``.
"""
from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .evaluate import evaluate_split
from .results import Result, save_result
from .segmenters.base import IMAGENET_MEAN, IMAGENET_STD
from .store import PredictionStore

__all__ = ["RunConfig", "predict_split", "run_method", "IMAGENET_MEAN", "IMAGENET_STD", "StaleRunError"]


class StaleRunError(ValueError):
    """Stored predictions were produced by a different method configuration."""


@dataclass
class RunConfig:
    out: Path
    results_dir: Path
    device: str = "cpu"
    batch_size: int = 1
    num_workers: int = 0
    overwrite: bool = False
    amp: str | None = None  # "bf16" (CUDA or CPU) | "fp16" (CUDA only; ignored on CPU) | None
    progress: bool = True
    protocol: str | None = None


class _FrameImages(torch.utils.data.Dataset):
    def __init__(self, split, ids: Sequence[str]) -> None:
        self.split, self.ids = split, list(ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int):
        frame = self.split.load(self.ids[i])
        return frame.frame_id, torch.from_numpy(np.ascontiguousarray(frame.image))


def _normaliser(method, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    cfg = getattr(getattr(method, "model", None), "pretrained_cfg", None)
    mean = getattr(cfg, "mean", None) or getattr(method, "mean", IMAGENET_MEAN)
    std = getattr(cfg, "std", None) or getattr(method, "std", IMAGENET_STD)
    m = torch.tensor(mean, device=device, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, device=device, dtype=torch.float32).view(1, 3, 1, 1)

    def normalise(batch_hwc_uint8: torch.Tensor) -> torch.Tensor:
        x = batch_hwc_uint8.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        return (x - m) / s

    return normalise


def method_fingerprint(method, method_name: str) -> dict[str, Any]:
    """What produced a set of predictions (compared on resume to refuse mixing configurations)."""
    from .methods import METHODS

    entry = METHODS.get(method_name)
    return {
        "method": method_name,
        "class": f"{type(method).__module__}.{type(method).__qualname__}",
        "hparams": method.hparams(),
        "checkpoint_sha256": method.checkpoint_sha256,
        "plugin": entry.provenance,
        "semantic_label_space": getattr(method, "semantic_label_space", None),
    }


def predict_split(
    method,
    method_name: str,
    split,
    cfg: RunConfig,
    frame_ids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Run ``method`` on the frames of ``split`` not yet stored; returns run statistics."""
    store = PredictionStore(cfg.out, method_name)
    key = split.key
    fp = method_fingerprint(method, method_name)
    previous = store.read_run_manifest(key)
    comparable = {k: v for k, v in fp.items() if k != "plugin"}
    if previous is not None and not cfg.overwrite:
        prev_cmp = {k: previous.get(k) for k in comparable}
        if prev_cmp != comparable:
            raise StaleRunError(
                f"{store.anomaly_dir(key)} holds predictions of a different configuration "
                f"({prev_cmp} vs {comparable}); pass --overwrite or choose another --out"
            )
    ids = list(split.frame_ids() if frame_ids is None else frame_ids)
    todo = ids if cfg.overwrite else store.missing(key, ids)
    store.write_run_manifest(key, fp)
    want_semantic = split.num_classes is not None
    stats = {"frames": len(ids), "predicted": len(todo), "skipped": len(ids) - len(todo), "float16_guarded": 0}
    if not todo:
        return stats

    device = torch.device(cfg.device)
    method.to(device)
    normalise = _normaliser(method, device)
    loader = torch.utils.data.DataLoader(
        _FrameImages(split, todo),
        batch_size=None,
        num_workers=cfg.num_workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if cfg.num_workers > 0 else None,
        persistent_workers=False,
    )
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp or "")
    writes: list[Future] = []
    pool = ThreadPoolExecutor(max_workers=2)

    def store_batch(fids, anomaly: np.ndarray, semantic: np.ndarray | None) -> int:
        guarded = 0
        for i, fid in enumerate(fids):
            guarded += store.write_anomaly(key, fid, anomaly[i], dtype=split.score_dtype)
            if semantic is not None:
                store.write_semantic(key, fid, semantic[i])
        return guarded

    def flush(fids: list[str], images: list[torch.Tensor]) -> None:
        x = normalise(torch.stack(images))
        with torch.inference_mode(), torch.autocast(
            device_type=device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None and (device.type == "cuda" or amp_dtype == torch.bfloat16)
        ):
            anomaly, logits = method.predict(x)
        sem = logits.argmax(dim=1).to(torch.uint8) if want_semantic else None
        # one host sync per batch
        anomaly_np = anomaly.float().cpu().numpy()
        sem_np = sem.cpu().numpy() if sem is not None else None
        writes.append(pool.submit(store_batch, list(fids), anomaly_np, sem_np))
        # bound the write queue
        while len(writes) > 4:
            stats["float16_guarded"] += writes.pop(0).result()

    try:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=f"{method_name} on {split.name}", unit="frame", disable=not cfg.progress)
        batch_ids: list[str] = []
        batch_imgs: list[torch.Tensor] = []
        for fid, img in loader:
            if batch_imgs and (img.shape != batch_imgs[0].shape or len(batch_imgs) == cfg.batch_size):
                flush(batch_ids, batch_imgs)
                bar.update(len(batch_ids))
                batch_ids, batch_imgs = [], []
            batch_ids.append(fid)
            batch_imgs.append(img)
        if batch_imgs:
            flush(batch_ids, batch_imgs)
            bar.update(len(batch_ids))
        for fut in writes:
            stats["float16_guarded"] += fut.result()
        bar.close()
    finally:
        pool.shutdown(wait=True)
    return stats


def run_method(
    method_name: str,
    splits: Sequence,
    cfg: RunConfig,
    method_kwargs: dict[str, Any] | None = None,
    method=None,
) -> list[Result]:
    """``oodbench run``: build the method once, then predict/store/evaluate every split."""
    from .methods import METHODS, build

    from .distributed import barrier, gather_objects, init_distributed, make_reducer, shard

    ctx = init_distributed(cfg.device)
    cfg = RunConfig(**{**cfg.__dict__, "device": str(ctx.device),
                       "progress": cfg.progress and ctx.is_main})
    if method is None:
        method = build(method_name, **(method_kwargs or {}))
    fp = method_fingerprint(method, method_name)
    reduce = make_reducer(ctx)
    results = []
    for split in splits:
        t0 = time.perf_counter()
        ids = split.frame_ids()
        mine = shard(ids, ctx)
        stats = predict_split(method, method_name, split, cfg, frame_ids=mine)
        barrier(ctx)  # every shard is stored before anyone evaluates
        if not split.labels_public:
            continue
        ev = evaluate_split(
            split,
            PredictionStore(cfg.out, method_name),
            cfg.protocol,
            frame_ids=mine,
            reduce=reduce,
            semantic_label_space=fp["semantic_label_space"],
            progress=cfg.progress,
        )
        all_stats = gather_objects(stats, ctx)
        run_notes = {k: sum(s[k] for s in all_stats) for k in stats}
        if ctx.distributed:
            run_notes["world_size"] = ctx.world_size
        result = Result(
            method=method_name,
            dataset=split.name,
            benchmark=split.benchmark,
            protocol=ev.protocol,
            protocol_version=ev.protocol_version,
            metrics=ev.metrics,
            num_frames=ev.num_frames,
            synthetic=bool(getattr(split, "synthetic", False)),
            hparams=fp["hparams"],
            checkpoint_sha256=fp["checkpoint_sha256"],
            plugin=METHODS.get(method_name).provenance,
            data_fingerprint=ev.data_fingerprint,
            data_root=str(split.root),
            predictions=str(cfg.out),
            device=str(cfg.device),
            wall_time_s=round(time.perf_counter() - t0, 3),
            notes={**ev.notes, "run": run_notes},
        )
        if ctx.is_main:
            save_result(result, cfg.results_dir)
        results.append(result)
    barrier(ctx)
    return results if ctx.is_main else []
