"""Predict -> store -> evaluate -> result record, for one method on one or more splits.

Inference overlaps with data loading (a ``DataLoader`` decodes frames in workers, pinned memory on
CUDA) and with storing (HDF5 writes run in a background thread), and the host synchronises once
per batch, not per image. Frames already stored *by this configuration* are skipped (resumable),
unless ``overwrite``: a frame counts as stored when its score file carries this configuration's
digest and the digest of the image files the split holds now, and, for splits with semantic labels,
its semantic map exists (:mod:`oodbench.store`).
"""
from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any, Callable, Sequence

import numpy as np
import torch

from oodbench.errors import OodbenchError

from .datasets import input_digest
from .evaluate import evaluate_split
from .preprocess import normaliser
from .run_config import RunConfig  # re-exported: the torch-free definition the CLI generates flags from
from .results import Result, save_result
from .segmenters.inference import autocast
from .store import PredictionStore, config_digest

__all__ = ["predict_batch", "RunConfig", "predict_split", "ready_method", "run_method", "StaleRunError"]


class StaleRunError(OodbenchError, ValueError):
    """Stored predictions were produced by a different method configuration."""


class _FrameImages(torch.utils.data.Dataset):
    def __init__(self, split, ids: Sequence[str]) -> None:
        self.split, self.ids = split, list(ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int):
        fid = self.ids[i]
        digest = input_digest(self.split, fid)  # of the files about to be decoded, before decoding them
        frame = self.split.load(fid)
        return frame.frame_id, digest, torch.from_numpy(np.ascontiguousarray(frame.image))


def predict_batch(method, normalise: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                  device: torch.device, amp: str | None = None,
                  semantic: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """One batch of uint8 ``[B, H, W, 3]`` images -> (anomaly scores ``[B, H, W]``, closed-set class
    ids ``[B, H, W]`` uint8 or ``None``), with one host synchronisation.

    The one inference step of oodbench (``run`` and ``fishyscapes-predict`` both call it): the
    method's declared preprocessing, ``Method.predict`` under inference mode and the autocast rule of
    :func:`oodbench.segmenters.inference.autocast`; scores leave as float32 whatever the autocast
    dtype (float64 stays float64: the store names any value its storage dtype cannot hold).
    """
    x = normalise(images)
    with torch.inference_mode(), autocast(device, amp):
        anomaly, logits = method.predict(x)
    sem = logits.argmax(dim=1).to(torch.uint8).cpu().numpy() if semantic else None
    anomaly_np = (anomaly if anomaly.dtype == torch.float64 else anomaly.float()).cpu().numpy()
    return anomaly_np, sem


def method_fingerprint(method, method_name: str) -> dict[str, Any]:
    """What produced a set of predictions (compared on resume to refuse mixing configurations).

    ``method_name`` is the store name (the run name); the registry name is the one the method was
    built under (:attr:`Method.registry_name`). Everything here comes from members the
    :class:`~oodbench.methods.Method` base class declares. The fitted state's sha256 is part of it
    whatever ``hparams()`` returns, so predictions of one fitted state are never reused for another;
    it is left out for methods without one, so the digests of earlier stores stay valid.
    """
    from .methods import METHODS

    registered = method.registry_name or method_name
    entry = METHODS.get(registered)
    fp = {
        "method": registered,
        "class": f"{type(method).__module__}.{type(method).__qualname__}",
        "hparams": method.hparams(),
        "checkpoint_sha256": method.checkpoint_sha256,
        "plugin": entry.provenance,
        "semantic_label_space": method.semantic_label_space,
        # predictions of untrained weights are never reused for a trained run (or the reverse)
        "untrained": method.untrained_reason() is not None,
    }
    if method.fitted_state_sha256 is not None:
        fp["fitted_state_sha256"] = method.fitted_state_sha256
    return fp


def _comparable(fp: dict[str, Any]) -> dict[str, Any]:
    """The part of a fingerprint that decides whether two runs are the same configuration."""
    return {k: v for k, v in fp.items() if k != "plugin"}


def _shown(ids: Sequence[str]) -> str:
    return ", ".join(ids[:5]) + (f" ... ({len(ids)} frames)" if len(ids) > 5 else "")


def predict_split(
    method,
    method_name: str,
    split,
    cfg: RunConfig,
    frame_ids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Run ``method`` on the frames of ``split`` not yet stored; returns run statistics.

    Raises:
        StaleRunError: the store's manifest names another configuration, stored frames belong
            to another configuration and there is no manifest for this one, or frames carry no
            configuration record and ``cfg.adopt_store`` is off.
    """
    store = PredictionStore(cfg.out, method_name)
    key = split.key
    fp = method_fingerprint(method, method_name)
    comparable = _comparable(fp)
    digest = config_digest(comparable)
    previous = None if cfg.overwrite else store.read_run_manifest(key)  # --overwrite: whatever it says
    folder = store.anomaly_dir(key)
    if previous is not None:
        prev_cmp = {k: previous.get(k) for k in comparable}
        if prev_cmp != comparable:
            raise StaleRunError(
                f"{folder} holds predictions of a different configuration "
                f"({prev_cmp} vs {comparable}); pass --overwrite or choose another --out"
            )
    ids = list(split.frame_ids() if frame_ids is None else frame_ids)
    want_semantic = split.num_classes is not None
    adopted: list[str] = []
    replaced: list[str] = []
    changed: set[str] = set()
    if cfg.overwrite:
        todo = ids
    else:
        # decided over the whole split, so every rank of a sharded run decides (and records) alike
        owners = store.attribution(key, split.frame_ids(), strict=False)
        foreign = [f for f, d in owners.items() if d is not None and d != digest]
        unrecorded = [f for f, d in owners.items() if d is None]
        if foreign and previous is None:
            raise StaleRunError(
                f"{folder} holds predictions of a different configuration (frames {_shown(foreign)}) "
                "and no run manifest; pass --overwrite or choose another --out"
            )
        if unrecorded and not cfg.adopt_store:
            raise StaleRunError(
                f"{folder}: {len(unrecorded)} stored frames carry no configuration record (frames "
                f"{_shown(unrecorded)}; written by another tool or an older oodbench"
                + (", and there is no run manifest" if previous is None else "")
                + "); pass --adopt-store if this exact configuration made them, or --overwrite"
            )
        adopted = unrecorded
        replaced = foreign  # left by an interrupted --overwrite: recomputed, never counted
        sem_missing = set(store.missing_semantic(key, ids)) if want_semantic else set()
        done = {f for f, d in owners.items() if (d == digest or d is None) and f not in sem_missing}
        # predicted from other image files than the root holds now (the data changed): recomputed
        changed = set(store.changed_inputs(key, [f for f in ids if f in done], partial(input_digest, split),
                                           strict=False))
        done -= changed
        todo = [f for f in ids if f not in done]
    mine = set(ids)
    # the same keys on every rank: run_method sums them over ranks
    stats = {"frames": len(ids), "predicted": len(todo), "skipped": len(ids) - len(todo), "float16_guarded": 0,
             "replaced_other_config": sum(f in mine for f in replaced), "adopted": sum(f in mine for f in adopted),
             "replaced_changed_input": len(changed)}
    # the training seed identifies the weights no better than their sha256: recorded, not compared
    manifest = {**fp, "config_digest": digest, "training_seed": method.training_seed}
    if adopted:
        manifest["adopted"] = {
            "by": "oodbench run --adopt-store",
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "frames": sorted({*adopted, *((previous or {}).get("adopted") or {}).get("frames", ())}),
        }
    elif previous and not cfg.overwrite and previous.get("adopted"):
        manifest["adopted"] = previous["adopted"]
    if todo or adopted:
        # nothing to predict and nothing to record: a complete (possibly read-only) store is not touched
        store.write_run_manifest(key, manifest)
    if not todo:
        return stats

    device = torch.device(cfg.device)
    method.to(device)
    normalise = normaliser(method, device)
    loader = torch.utils.data.DataLoader(
        _FrameImages(split, todo),
        batch_size=None,
        num_workers=cfg.num_workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if cfg.num_workers > 0 else None,
        persistent_workers=False,
    )
    writes: list[Future] = []
    pool = ThreadPoolExecutor(max_workers=2)

    def store_batch(fids, inputs, anomaly: np.ndarray, semantic: np.ndarray | None) -> int:
        guarded = 0
        for i, fid in enumerate(fids):
            if semantic is not None:  # first: the score file (with the digest) commits the frame
                store.write_semantic(key, fid, semantic[i])
            guarded += store.write_anomaly(key, fid, anomaly[i], dtype=split.score_dtype, config=digest,
                                           input_digest=inputs[i])
        return guarded

    def flush(fids: list[str], inputs: list[str | None], images: list[torch.Tensor]) -> None:
        anomaly_np, sem_np = predict_batch(method, normalise, torch.stack(images), device, cfg.amp,
                                           semantic=want_semantic)
        writes.append(pool.submit(store_batch, list(fids), list(inputs), anomaly_np, sem_np))
        # bound the write queue
        while len(writes) > 4:
            stats["float16_guarded"] += writes.pop(0).result()

    try:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=f"{method_name} on {split.name}", unit="frame", disable=not cfg.progress)
        batch_ids: list[str] = []
        batch_inputs: list[str | None] = []
        batch_imgs: list[torch.Tensor] = []
        for fid, input_sha, img in loader:
            if batch_imgs and (img.shape != batch_imgs[0].shape or len(batch_imgs) == cfg.batch_size):
                flush(batch_ids, batch_inputs, batch_imgs)
                bar.update(len(batch_ids))
                batch_ids, batch_inputs, batch_imgs = [], [], []
            batch_ids.append(fid)
            batch_inputs.append(input_sha)
            batch_imgs.append(img)
        if batch_imgs:
            flush(batch_ids, batch_inputs, batch_imgs)
            bar.update(len(batch_ids))
        for fut in writes:
            stats["float16_guarded"] += fut.result()
        bar.close()
    finally:
        pool.shutdown(wait=True)
    return stats


def ready_method(method, method_name: str, *, state=None, allow_untrained: bool = False) -> str | None:
    """Make a built method ready to score, or refuse it; returns why its weights are untrained (None: trained).

    The one gate every command that scores images passes (``run``, ``fishyscapes-predict``): a fitted
    ``state`` (``oodbench fit``) is loaded and checked against the method (:func:`~oodbench.fitting.
    load_state_into`), and a method whose :meth:`~oodbench.methods.Method.untrained_reason` is not None
    (random weights, a segmenter-only checkpoint, a fit it never had) is refused with
    :class:`~oodbench.methods.UntrainedMethodError` unless ``allow_untrained``.
    """
    from .methods import UntrainedMethodError

    if state is not None:
        from .fitting import load_state_into

        load_state_into(method, state, method_name)
    if method.registry_name is None:
        method.registry_name = method_name
    untrained = method.untrained_reason()
    if untrained is not None and not allow_untrained:
        raise UntrainedMethodError(f"{method_name}: {untrained}; or pass --allow-untrained to score it anyway "
                                   "(its numbers are marked untrained)")
    return untrained


def run_method(
    method_name: str,
    splits: Sequence,
    cfg: RunConfig,
    method_kwargs: dict[str, Any] | None = None,
    method=None,
) -> list[Result]:
    """``oodbench run``: build the method once, then predict/store/evaluate every split."""
    from .methods import METHODS, build

    from .sharding import barrier, gather_objects, init_distributed, make_reducer, shard

    ctx = init_distributed(cfg.device)
    cfg = RunConfig(**{**cfg.__dict__, "device": str(ctx.device),
                       "progress": cfg.progress and ctx.is_main})
    if method is None:
        method = build(method_name, **(method_kwargs or {}))
    from . import metrics as M

    for split in splits:  # a protocol / FPR95 rule mismatch is refused before hours of inference
        if split.labels_public:
            M.build_protocol(cfg.protocol or split.protocol,
                             **({} if cfg.fpr_rule is None else {"fpr_rule": cfg.fpr_rule}))
    # before anything is written: no store folder, no record
    untrained = ready_method(method, method_name, state=cfg.state, allow_untrained=cfg.allow_untrained)
    store_name = cfg.name or method_name
    fp = method_fingerprint(method, store_name)
    reduce = make_reducer(ctx)
    results = []
    for split in splits:
        t0 = time.perf_counter()
        ids = split.frame_ids()
        mine = shard(ids, ctx)
        stats = predict_split(method, store_name, split, cfg, frame_ids=mine)
        barrier(ctx)  # every shard is stored before anyone evaluates
        if not split.labels_public:
            continue
        ev = evaluate_split(
            split,
            PredictionStore(cfg.out, store_name),
            cfg.protocol,
            frame_ids=mine,
            reduce=reduce,
            semantic_label_space=fp["semantic_label_space"],
            progress=cfg.progress,
            fpr_rule=cfg.fpr_rule,
            bootstrap=cfg.bootstrap,
        )
        all_stats = gather_objects(stats, ctx)
        run_notes = {k: sum(s[k] for s in all_stats) for k in stats}
        if ctx.distributed:
            run_notes["world_size"] = ctx.world_size
        notes = {**ev.notes, "run": run_notes, **({"untrained": untrained} if untrained else {})}
        result = Result.from_evaluation(
            ev, split, method=method_name, hparams=fp["hparams"], checkpoint_sha256=fp["checkpoint_sha256"],
            plugin=METHODS.get(method_name).provenance, untrained=untrained is not None, predictions=cfg.out,
            device=str(cfg.device), wall_time_s=time.perf_counter() - t0, notes=notes,
            selected_on=method.selected_on,  # a checkpoint chosen on a validation split
            training_seed=method.training_seed,
            name=store_name, fitted_state_sha256=method.fitted_state_sha256,
        )
        if ctx.is_main:
            save_result(result, cfg.results_dir)
        results.append(result)
    barrier(ctx)
    return results if ctx.is_main else []
