"""Unit tests of the shared training engine (oodbench/training)."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from oodbench.training.checkpointing import (
    CheckpointError, find_resume, load_checkpoint, rng_state, save_checkpoint, set_rng_state,
)
from oodbench.cli_config import add_dataclass_arguments, config_from_namespace, config_to_dict
from oodbench.training.config import EngineConfig
from oodbench.training.device import amp_dtype, autocast, loader_kwargs, maybe_channels_last
from oodbench.training.distributed import gather_rows, global_mean_parts, global_sum, init_distributed
from oodbench.training.logs import CSVLogger, read_csv_log
from oodbench.training.sampler import EpochBatchSampler, epoch_order
from oodbench.training.schedule import PolySchedule, poly_lr
from oodbench.training.seeding import WorkerSeeder, derive_seed, numpy_rng, torch_generator
from oodbench.training.syncbn import convert_batchnorm
from oodbench.training.transforms import normalize, pad_or_center_crop, random_crop, resize

CPU = torch.device("cpu")


# ------------------------------------------------------------------------------------ seeding
def test_derive_seed_is_pure_and_separates_keys():
    assert derive_seed(1, 2, 3) == derive_seed(1, 2, 3)
    assert derive_seed(1, 0) != derive_seed(0, 1)  # no additive collisions
    assert derive_seed(1, "a") != derive_seed(1, "b")
    assert 0 <= derive_seed(7) < 2**63
    assert numpy_rng(5, 1).integers(1 << 30) == numpy_rng(5, 1).integers(1 << 30)
    assert torch.equal(torch.randperm(9, generator=torch_generator(3)), torch.randperm(9, generator=torch_generator(3)))
    with pytest.raises(ValueError):
        derive_seed(-1)


def test_worker_seeder_depends_on_seed_epoch_rank_worker():
    def draw(s):
        s(0)
        return torch.rand(1).item(), np.random.rand()

    a = draw(WorkerSeeder(1, 0, 0))
    assert a == draw(WorkerSeeder(1, 0, 0))
    assert a != draw(WorkerSeeder(1, 1, 0)) and a != draw(WorkerSeeder(1, 0, 1))


# ------------------------------------------------------------------------------------ sampler
def test_sampler_ranks_split_the_single_process_batch_contiguously():
    one = list(EpochBatchSampler(20, 8, seed=3, epoch=2))
    r0 = list(EpochBatchSampler(20, 4, seed=3, epoch=2, rank=0, world_size=2))
    r1 = list(EpochBatchSampler(20, 4, seed=3, epoch=2, rank=1, world_size=2))
    assert len(one) == len(r0) == len(r1) == 2  # drop_last: 20 // 8
    for b in range(2):
        assert one[b] == r0[b] + r1[b]
        assert all(e == 2 for _, e in one[b])
    assert sorted(i for b in one for i, _ in b) == sorted(epoch_order(20, 3, 2, True)[:16].tolist())


def test_sampler_is_a_function_of_seed_and_epoch_and_resumes_mid_epoch():
    full = list(EpochBatchSampler(30, 4, seed=1, epoch=0))
    assert full == list(EpochBatchSampler(30, 4, seed=1, epoch=0))
    assert full != list(EpochBatchSampler(30, 4, seed=1, epoch=1))
    assert list(EpochBatchSampler(30, 4, seed=1, epoch=0, start_batch=5)) == full[5:]
    assert len(EpochBatchSampler(30, 4, seed=1, epoch=0, start_batch=5)) == 2
    assert [i for i, _ in list(EpochBatchSampler(9, 3, 0, 0, shuffle=False))[1]] == [3, 4, 5]
    with pytest.raises(ValueError, match="smaller than one global batch"):
        EpochBatchSampler(3, 2, 0, 0, world_size=2)


# ------------------------------------------------------------------------------------ schedule
def test_poly_lr_values_and_groups():
    assert poly_lr(0.01, 0, 100) == 0.01
    assert poly_lr(0.01, 50, 100) == pytest.approx(0.01 * 0.5**0.9)
    assert poly_lr(0.01, 99, 100, power=1.0) == pytest.approx(0.0001)
    assert poly_lr(0.01, 100, 100, min_lr=1e-8) == 1e-8
    w = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    opt = torch.optim.Adam([{"params": [w[0]], "lr": 7.5e-4}, {"params": [w[1]], "lr": 7.5e-5}])
    sched = PolySchedule(opt, 10)
    assert sched.set(5) == pytest.approx(7.5e-5 * 0.5**0.9)  # logs the base group
    assert opt.param_groups[0]["lr"] == pytest.approx(10 * opt.param_groups[1]["lr"])
    ref = PolySchedule(opt, 10, off_by_one=True)  # reference: steps 0 and 1 both at the base LR
    assert ref.set(0) == ref.set(1) == pytest.approx(7.5e-5)
    assert ref.set(2) == pytest.approx(poly_lr(7.5e-5, 1, 10))


# ------------------------------------------------------------------------------------ checkpoint
def test_checkpoint_roundtrip_with_rng_state_under_weights_only(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    torch.manual_seed(5)
    np.random.seed(5)
    state = rng_state()
    expected = (torch.rand(3), np.random.rand(3))
    path = save_checkpoint({"model": model.state_dict(), "optimizer": opt.state_dict(), "iteration": 7, "rng": state},
                           tmp_path / "c.pth")
    assert [p.name for p in tmp_path.iterdir()] == ["c.pth"]  # no temporary left behind
    loaded = load_checkpoint(path, required=("model", "iteration"))
    assert loaded["iteration"] == 7
    torch.optim.Adam(model.parameters()).load_state_dict(loaded["optimizer"])
    set_rng_state(loaded["rng"])
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(3), expected[1])


def test_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    torch.save({"x": argparse.Namespace(a=1)}, bad)  # an arbitrary object: refused by weights_only
    with pytest.raises(CheckpointError, match="bad.pth"):
        load_checkpoint(bad)
    ok = save_checkpoint({"a": 1}, tmp_path / "ok.pth")
    with pytest.raises(CheckpointError, match="lacks keys"):
        load_checkpoint(ok, required=("model",))


def test_find_resume(tmp_path):
    assert find_resume(tmp_path, "auto") is None
    save_checkpoint({"iteration": 1}, tmp_path / "last.pth")
    assert find_resume(tmp_path, "auto") == tmp_path / "last.pth"
    assert find_resume(tmp_path, "no") is None
    with pytest.raises(CheckpointError):
        find_resume(tmp_path, str(tmp_path / "missing.pth"))


# ------------------------------------------------------------------------------------ logs
def test_csv_logger_truncates_on_resume_and_keeps_full_precision(tmp_path):
    log = CSVLogger(tmp_path / "t.csv", flush_every=2)
    for i in range(1, 6):
        log.log({"iteration": i, "loss": 1 / 3 + i})
    log.log({"iteration": 6, "loss": 0.5, "extra": 1})
    log.flush()
    rows = read_csv_log(tmp_path / "t.csv")
    assert len(rows) == 6 and float(rows[0]["loss"]) == 1 / 3 + 1 and rows[-1]["extra"] == "1"
    resumed = CSVLogger(tmp_path / "t.csv", resume_iteration=4)
    resumed.log({"iteration": 5, "loss": 9.0})
    resumed.flush()
    assert [r["iteration"] for r in read_csv_log(tmp_path / "t.csv")] == ["1", "2", "3", "4", "5"]
    CSVLogger(tmp_path / "u.csv", enabled=False).log({"iteration": 1})
    assert not (tmp_path / "u.csv").exists()


# ------------------------------------------------------------------------------------ config
@dataclass
class _Cfg(EngineConfig):
    crop: tuple[int, int] = field(default=(4, 5), metadata={"help": "crop"})
    name: str | None = field(default=None, metadata={"help": "a name"})
    mode: str = field(default="a", metadata={"help": "mode", "choices": ["a", "b"]})
    hook: object = field(default=None, metadata={"cli": False})


def test_config_flags_roundtrip():
    p = argparse.ArgumentParser()
    add_dataclass_arguments(p, _Cfg)
    ns = p.parse_args(["--crop", "7", "8", "--no-amp", "--max-iters", "3", "--mode", "b"])
    cfg = config_from_namespace(_Cfg, ns)
    assert cfg.crop == (7, 8) and cfg.amp is False and cfg.max_iters == 3 and cfg.mode == "b" and cfg.name is None
    d = config_to_dict(cfg)
    assert d["crop"] == [7, 8] and "hook" in d
    with pytest.raises(SystemExit):
        p.parse_args(["--mode", "c"])


def test_configuration_and_runtime_fields_are_declared():
    """Runtime fields may differ on resume; everything else decides the weights and must match."""
    from oodbench.methods.rpl.train import RPLTrainConfig
    from oodbench.training.config import runtime_fields
    from oodbench.training.segmenter import SegmenterTrainConfig

    engine = {"out_dir", "stop_after", "ckpt_every", "keep_iter_ckpts", "max_iter_ckpts", "val_every", "log_every",
              "resume", "resume_anyway", "device", "num_workers", "progress", "deterministic", "val_from_epoch", "select"}
    assert runtime_fields(EngineConfig) == engine
    assert runtime_fields(SegmenterTrainConfig) == engine | {"data_root", "val_split", "init_checkpoint"}
    assert runtime_fields(RPLTrainConfig) == engine | {
        "checkpoint", "data_root", "cityscapes_root", "coco_root", "find_unused_parameters", "validator",
        "val_splits", "val_max_frames", "finetune_from", "extra_root"}
    assert {"seed", "max_iters", "epochs", "amp"}.isdisjoint(runtime_fields(RPLTrainConfig))


def test_reconcile_config_refuses_or_keeps_the_stored_values():
    from oodbench.training.resume import ResumeError, config_differences, reconcile_config

    stored = config_to_dict(_Cfg(crop=(4, 5), seed=1, num_workers=0))
    del stored["mode"]  # a checkpoint written before the field existed: not compared
    asked = _Cfg(crop=(6, 5), seed=2, num_workers=3, mode="b")
    assert [d.name for d in config_differences(asked, stored)] == ["seed", "crop"]
    with pytest.raises(ResumeError, match=r"^ck\.pth: .*--seed 1 -> 2; --crop 4 5 -> 6 5\)"):
        reconcile_config(asked, {"config": stored}, "ck.pth")
    asked.resume_anyway = True
    kept, ignored = reconcile_config(asked, {"config": stored}, "ck.pth")
    assert kept.crop == (4, 5) and kept.seed == 1 and kept.num_workers == 3 and kept.mode == "b"
    assert [(d.name, d.asked) for d in ignored] == [("seed", 2), ("crop", [6, 5])]
    assert reconcile_config(asked, {"iteration": 3}, "hand-made.pth") == (asked, [])


def test_stale_temporaries_are_removed_and_never_resumed_from(tmp_path):
    from oodbench.training.resume import remove_stale_temporaries

    (tmp_path / ".tmp-last.pth.abc.pth").write_bytes(b"torn")
    assert find_resume(tmp_path, "auto") is None  # a torn last.pth is not a checkpoint
    keep = save_checkpoint({"iteration": 1}, tmp_path / "last.pth")
    assert find_resume(tmp_path, "auto") == keep
    assert remove_stale_temporaries(tmp_path) == [tmp_path / ".tmp-last.pth.abc.pth"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pth"]
    assert remove_stale_temporaries(tmp_path / "absent") == []


# ------------------------------------------------------------------------------------ device
def test_device_switches_are_noops_on_cpu():
    assert amp_dtype(CPU, True) is None
    with autocast(CPU, True):
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.float32
    assert loader_kwargs(CPU, 0)["pin_memory"] is False
    x = torch.zeros(1, 2, 3, 3)
    assert maybe_channels_last(x, CPU) is x


# ------------------------------------------------------------------------------------ distributed (1 process)
def test_single_process_context_and_collectives(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = init_distributed("cpu")
    assert not ctx.distributed and ctx.backend is None and ctx.is_main
    monkeypatch.setenv("WORLD_SIZE", "1")  # the reference entered DDP mode here; we do not
    assert init_distributed("cpu").backend is None
    assert float(global_sum(3.0, ctx)) == 3.0
    share, n = global_mean_parts(torch.tensor(6.0), 3, ctx)
    assert float(share) == 2.0 and float(n) == 3
    zero, _ = global_mean_parts(torch.tensor(6.0, requires_grad=True), 0, ctx)
    assert float(zero.detach()) == 0.0 and zero.requires_grad
    x = torch.randn(3, 2)
    assert gather_rows(x, ctx) is x
    bn = torch.nn.Sequential(torch.nn.BatchNorm2d(2))
    assert convert_batchnorm(bn, ctx) is bn and type(bn[0]) is torch.nn.BatchNorm2d


DIST_WORKER = textwrap.dedent('''
    import os, sys, torch
    from oodbench.training.distributed import cleanup_distributed, init_distributed, gather_rows, global_mean_parts
    from oodbench.training.syncbn import DistBatchNorm2d, convert_batchnorm
    from oodbench.methods.rpl.losses import DistributedPoolSampler, PoolSampler
    ctx = init_distributed("cpu")
    r, w = ctx.rank, ctx.world_size
    torch.manual_seed(0)
    x = torch.randn(6, 3, 4, 5, dtype=torch.float64)          # the global batch, same on every rank
    ref = torch.nn.BatchNorm2d(3).double()
    mine = convert_batchnorm(torch.nn.Sequential(torch.nn.BatchNorm2d(3).double()), ctx)[0]
    assert isinstance(mine, DistBatchNorm2d)
    xg = x.clone().requires_grad_(True)
    yref = ref(xg)
    yref.pow(3).sum().backward()
    xl = x[r * 3:(r + 1) * 3].clone().requires_grad_(True)
    out = mine(xl)
    # the loss is a per-rank partial sum; its gradient through the all-reduces is the global one
    out.pow(3).sum().backward()
    assert torch.allclose(out, yref[r * 3:(r + 1) * 3], atol=1e-12)
    assert torch.allclose(xl.grad, xg.grad[r * 3:(r + 1) * 3], atol=1e-9), (xl.grad - xg.grad[r*3:(r+1)*3]).abs().max()
    for name in ("running_mean", "running_var"):
        assert torch.allclose(getattr(mine, name), getattr(ref, name), atol=1e-12), name
    # uneven gather with gradient
    rows = torch.arange((r + 1) * 2 * 2, dtype=torch.float64).reshape(-1, 2).requires_grad_(True)
    g = gather_rows(rows, ctx)
    assert g.shape[0] == 2 + 4
    (g * torch.arange(12, dtype=torch.float64).reshape(6, 2)).sum().backward()
    start = 0 if r == 0 else 2
    expect = w * torch.arange(12, dtype=torch.float64).reshape(6, 2)[start:start + rows.shape[0]]
    assert torch.equal(rows.grad, expect), rows.grad
    # global pool sampling == local sampling on the concatenated pools
    full = [torch.randn(n, 4, generator=torch.Generator().manual_seed(n)) for n in (7, 10, 5, 8)]
    cut = [(3, 2), (4, 6), (0, 5), (8, 0)]
    local = [p[:c[0]] if r == 0 else p[c[0]:] for p, c in zip(full, cut)]
    ds = DistributedPoolSampler(ctx)
    assert ds.sizes(local) == [7, 10, 5, 8]
    for i, p in enumerate(local):
        a = ds.take(4, i, p, torch.Generator().manual_seed(i))
        b = PoolSampler().take(4, i, full[i], torch.Generator().manual_seed(i))
        assert torch.equal(a, b), (i, a, b)
    # CoroCL with every image on rank 0 and none on rank 1 (a rank with 0 OoD images): no crash,
    # and the value of one process holding all images
    from oodbench.methods.rpl.losses import corocl_loss
    g = torch.Generator().manual_seed(0)
    cp, op = torch.randn(2, 4, 4, 4, generator=g), torch.randn(2, 4, 4, 4, generator=g)
    cgt = torch.randint(0, 3, (2, 4, 4), generator=g)
    cgt[cgt == 2] = 254
    ogt = torch.randint(0, 2, (2, 4, 4), generator=g) * 254
    full = corocl_loss(cp, cgt, op, ogt, max_views=5, generator=torch.Generator().manual_seed(1))
    sel = slice(0, 2) if r == 0 else slice(0, 0)
    part = corocl_loss(cp[sel], cgt[sel], op[sel], ogt[sel], max_views=5, generator=torch.Generator().manual_seed(1),
                       sampler=DistributedPoolSampler(ctx))
    assert abs(float(full) - float(part)) < 1e-6 and float(full) > 0, (float(full), float(part))
    share, n = global_mean_parts(torch.tensor(float(r + 1)), r + 2, ctx)
    assert float(n) == 5 and abs(float(share) - 2 * (r + 1) / 5) < 1e-6
    print("RANK_OK", r)
    cleanup_distributed(ctx)
''')


def test_collectives_and_global_bn_under_torchrun_gloo(tmp_path):
    """2 CPU ranks (gloo): global BN = full-batch BN (values, input grads, running stats), uneven
    autograd gather, CoroCL pool sampling = single-process sampling, global masked means."""
    script = tmp_path / "worker.py"
    script.write_text(DIST_WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # `python -m torch.distributed.run` is torchrun; a venv may lack the torchrun script
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("RANK_OK") == 2


# ------------------------------------------------------------------------------------ transforms
def test_transforms_pad_with_mean_colour_and_ignore():
    img = np.full((2, 3, 3), 255, np.uint8)
    x = normalize(img)
    assert x.shape == (3, 2, 3) and torch.allclose(x[0], torch.full((2, 3), (1 - 0.485) / 0.229))
    y = torch.zeros(2, 3, dtype=torch.long)
    px, py = pad_or_center_crop(x, y, (4, 2))
    assert px.shape == (3, 4, 2) and float(px[:, 0].abs().sum()) == 0.0 and (py[0] == 255).all() and (py[1] == 0).all()
    cx, cy = random_crop(x, y, (2, 2), np.random.default_rng(0))
    assert cx.shape == (3, 2, 2) and (cy == 0).all()
    rx, ry = resize(x, y, (4, 6))
    assert rx.shape == (3, 4, 6) and ry.dtype == torch.long
    with pytest.raises(ValueError, match="uint8"):
        normalize(np.zeros((2, 2, 3), np.float32))


def test_inclusive_crop_bound_can_leave_a_one_pixel_pad():
    x, y = torch.ones(3, 4, 4), torch.zeros(4, 4, dtype=torch.long)
    seen_pad = False
    for s in range(50):
        _, cy = random_crop(x, y, (4, 4), np.random.default_rng(s), inclusive_bound=True)
        seen_pad |= bool((cy == 255).any())
        _, cz = random_crop(x, y, (4, 4), np.random.default_rng(s))
        assert not (cz == 255).any()
    assert seen_pad
