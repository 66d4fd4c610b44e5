"""RPL+CoroCL trainer and outlier-exposure pipeline (methods/rpl/train.py, methods/rpl/data.py)."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from PIL import Image

from oodbench import segmenters
from oodbench.methods.rpl.data import FIXED, REFERENCE, OutlierExposureSet, load_coco_pair, paste_object
from oodbench.methods.rpl.model import RPLNet
from oodbench.methods.rpl.train import add_train_parser, resolve_from_args, train_rpl
from oodbench.training.logs import read_csv_log

from _helpers import TinyCity, rpl_net as _net, rpl_train as _train, rpl_train_config as _cfg


# ------------------------------------------------------------------------------------ data
def test_paste_object_copies_only_mask_pixels():
    img, lab = torch.zeros(3, 6, 6), torch.full((6, 6), 7)
    obj = torch.arange(3 * 6 * 6, dtype=torch.float32).reshape(3, 6, 6)
    mask = torch.zeros(6, 6, dtype=torch.long)
    mask[1, 2] = mask[2, 3] = 254  # union box rows 1-2, cols 2-3 (2x2), 2 of its 4 pixels are object
    out, out_lab = paste_object(img, lab, obj, mask, np.random.default_rng(0))
    assert int((out_lab == 254).sum()) == 2 and int((out_lab == 7).sum()) == 34
    ys, xs = torch.nonzero(out_lab == 254, as_tuple=True)
    assert (int(ys[1] - ys[0]), int(xs[1] - xs[0])) == (1, 1)  # shape of the object kept
    assert torch.equal(out[:, ys[0], xs[0]], obj[:, 1, 2]) and torch.equal(out[:, ys[1], xs[1]], obj[:, 2, 3])
    assert int((out != 0).any(0).sum()) == 2  # nothing else painted
    assert int((lab == 254).sum()) == 0  # inputs untouched
    same, same_lab = paste_object(img, lab, obj, torch.zeros(6, 6, dtype=torch.long), np.random.default_rng(0))
    assert same is img and same_lab is lab  # no object pixel -> nothing pasted


def test_oe_sample_layout_and_determinism(coco_pairs):
    ds = OutlierExposureSet(TinyCity(4), coco_pairs, crop_size=(32, 32), seed=1)
    city, city_gt, ctx, ctx_gt = ds[(2, 0)]
    assert city.shape == ctx.shape == (3, 32, 32) and city_gt.shape == ctx_gt.shape == (32, 32)
    assert city_gt.dtype == ctx_gt.dtype == torch.int64
    assert set(torch.unique(ctx_gt).tolist()) <= {0, 254, 255}
    assert not (ctx_gt == 255).any()  # the 36x44 picture covers the 32x32 canvas (centre crop)
    again = ds[(2, 0)]
    assert all(torch.equal(a, b) for a, b in zip((city, city_gt, ctx, ctx_gt), again))
    assert not torch.equal(ds[(2, 1)][1], city_gt)  # another epoch, other draws
    pasted = sum(int((ds[(i, e)][1] == 254).any()) for i in range(4) for e in range(3))
    assert pasted >= 10  # objects survive nearly every scale


def test_coco_context_is_padded_not_resized(coco_pairs):
    ds = OutlierExposureSet(TinyCity(2, 60, 60), coco_pairs, crop_size=(48, 48), seed=0)
    _, _, ctx, ctx_gt = ds[(0, 0)]
    # 36x44 picture centred on 48x48: 6 rows of padding top and bottom, 2 columns left and right
    assert (ctx_gt[:6] == 255).all() and (ctx_gt[-6:] == 255).all() and (ctx_gt[:, :2] == 255).all()
    assert not (ctx_gt[6:42, 2:46] == 255).any()
    assert float(ctx[:, :6].abs().sum()) == 0.0  # mean colour (0 after normalisation)


def test_quirk_flags_are_in_one_place():
    assert FIXED.flip_prob == 0.5 and REFERENCE.flip_prob == 0.8
    assert FIXED.shuffle and not REFERENCE.shuffle
    assert sorted(FIXED.scales) == [0.1, 0.125, 0.25, 0.5, 0.75] and REFERENCE.scales.count(0.5) == 2
    assert REFERENCE.crop_inclusive_bound and REFERENCE.coco_epoch_subset and REFERENCE.lr_off_by_one
    assert not (FIXED.crop_inclusive_bound or FIXED.coco_epoch_subset or FIXED.lr_off_by_one)


def test_reference_flip_probability_is_reproduced(coco_pairs):
    class Ramp(TinyCity):
        def __getitem__(self, i):
            img = np.zeros((32, 32, 3), np.uint8)
            img[:, :, 0] = np.arange(32, dtype=np.uint8)[None] * 8  # left dark, right bright
            return img, np.zeros((32, 32), np.uint8)

    for quirks, expected in ((False, 0.5), (True, 0.8)):
        ds = OutlierExposureSet(Ramp(1), coco_pairs, crop_size=(32, 32), reference_quirks=quirks, seed=0)
        rows = [ds[(0, e)][0][0, 16] for e in range(200)]  # deterministic draws: no flakiness
        flips = [float(r[0]) > float(r[31]) for r in rows]
        assert abs(np.mean(flips) - expected) < 0.1, (quirks, np.mean(flips))


def test_bad_coco_mask_values_are_reported(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a.jpg")
    Image.fromarray(np.full((4, 4), 3, np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(ValueError, match="a.png"):
        load_coco_pair(tmp_path / "a.jpg", tmp_path / "a.png")


# ------------------------------------------------------------------------------------ trainer
def test_resume_after_kill_gives_the_same_final_weights(tmp_path, coco_pairs):
    full = _train(tmp_path / "full", coco_pairs)
    assert full.iteration == 6
    killed = _train(tmp_path / "res", coco_pairs, stop_after=3)
    assert killed.stopped_early and killed.iteration == 3
    resumed = _train(tmp_path / "res", coco_pairs)
    assert resumed.resumed_from == 2
    a = torch.load(tmp_path / "full" / "last.pth", weights_only=True)
    b = torch.load(tmp_path / "res" / "last.pth", weights_only=True)
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    cols = ("iteration", "ce", "reg", "energy", "corocl", "total", "lr")
    rows_a = [tuple(r[c] for c in cols) for r in read_csv_log(tmp_path / "full" / "train.csv")]
    rows_b = [tuple(r[c] for c in cols) for r in read_csv_log(tmp_path / "res" / "train.csv")]
    assert rows_a == rows_b and len(rows_a) == 6
    assert any(r[4] != "0.0" for r in rows_a)  # CoroCL was active


def test_worker_processes_do_not_change_the_run(tmp_path, coco_pairs):
    """Augmentation is keyed by (seed, epoch, sample), so DataLoader workers give the same losses."""
    a = _train(tmp_path / "w0", coco_pairs, max_iters=2, num_workers=0)
    b = _train(tmp_path / "w2", coco_pairs, max_iters=2, num_workers=2)
    cols = ("ce", "reg", "energy", "corocl")
    rows = [[tuple(r[c] for c in cols) for r in read_csv_log(res.out_dir / "train.csv")] for res in (a, b)]
    assert rows[0] == rows[1]


def test_checkpoint_layout_frozen_parts_and_optimizer(tmp_path, coco_pairs):
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    res = _train(tmp_path / "run", coco_pairs, net=net, max_iters=2)
    ckpt = torch.load(res.out_dir / "last.pth", weights_only=True)
    assert {"model", "optimizer", "epoch", "iteration", "config", "rng"} <= set(ckpt)
    assert ckpt["iteration"] == 2 and ckpt["config"]["lr"] == 7.5e-5
    keys = list(ckpt["model"])
    assert all(k.startswith("branch1.") for k in keys)
    assert any(k.startswith("branch1.residual_block.proj_head.proj.0.") for k in keys)
    assert keys == list(before)  # the released key layout and order
    changed = {k for k, v in ckpt["model"].items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("branch1.residual_block.") for k in changed)
    lrs = sorted(g["lr"] for g in ckpt["optimizer"]["param_groups"])
    assert lrs[-1] == pytest.approx(10 * lrs[0])
    fresh = RPLNet(segmenters.build("deeplabv3plus_small"), init=False)
    fresh.load_state_dict(ckpt["model"], strict=True)


def test_rpl_only_mode_has_no_projector_and_no_corocl(tmp_path, coco_pairs):
    res = _train(tmp_path / "run", coco_pairs, net=_net(projector=False), corocl_weight=0.0, max_iters=2)
    rows = read_csv_log(res.out_dir / "train.csv")
    assert all(float(r["corocl"]) == 0.0 and r["corocl_active"] == "0" for r in rows)
    ckpt = torch.load(res.out_dir / "last.pth", weights_only=True)
    assert not any("proj_head" in k for k in ckpt["model"])


def test_corocl_gate_needs_enough_images_with_objects(tmp_path, coco_pairs):
    res = _train(tmp_path / "run", coco_pairs, corocl_min_images=3, max_iters=2)  # batch 2 < 3
    assert all(r["corocl_active"] == "0" for r in read_csv_log(res.out_dir / "train.csv"))


def test_validator_callback_runs_in_eval_mode_and_restores_train_mode(tmp_path, coco_pairs):
    seen = []

    def validator(model, iteration):
        seen.append((iteration, model.residual_block.training, model.branch1.training))
        return {"score": float(iteration)}

    net = _net()
    res = _train(tmp_path / "run", coco_pairs, net=net, validator=validator, val_every=2, max_iters=4)
    assert seen == [(2, False, False), (4, False, False)]
    assert net.residual_block.training and not net.branch1.backbone.training
    assert [r["score"] for r in read_csv_log(res.out_dir / "val.csv")] == ["2.0", "4.0"]


def test_cli_parser_defaults_follow_the_paper():
    parser = argparse.ArgumentParser()
    add_train_parser(parser.add_subparsers())
    args = parser.parse_args(["train", "--method", "rpl", "--segmenter", "deeplabv3plus_small",
                              "--checkpoint", "c.pth", "--data-root", "R"])
    cfg, _sources = resolve_from_args(args)
    assert (cfg.lr, cfg.head_lr_mult, cfg.poly_power, cfg.batch_size, cfg.crop_size, cfg.epochs) == (
        7.5e-5, 10.0, 0.9, 8, (700, 700), 40)
    assert (cfg.tau, cfg.max_views, cfg.energy_weight, cfg.corocl_weight) == (0.1, 512, 0.05, 1.0)
    assert cfg.reference_quirks is False and callable(args.func)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="--checkpoint"):
        train_rpl(_cfg(tmp_path), city=TinyCity(4), coco=[("a", "b")])


def test_paste_scales_override(coco_pairs):
    """Small crops (the synthetic demo) need smaller object scales than the paper's 700 px crops."""
    ds = OutlierExposureSet(TinyCity(2), coco_pairs, crop_size=(32, 32), seed=0, scales=(0.05, 0.1))
    assert ds.recipe.scales == (0.05, 0.1) and ds.recipe.flip_prob == FIXED.flip_prob
    assert OutlierExposureSet(TinyCity(2), coco_pairs, crop_size=(32, 32)).recipe.scales == FIXED.scales
    with pytest.raises(ValueError, match="paste scales must be in"):
        OutlierExposureSet(TinyCity(2), coco_pairs, crop_size=(32, 32), scales=(0.0,))


# ------------------------------------------------------------------------------------ resume guards
def test_resume_with_another_configuration_is_refused(tmp_path, coco_pairs):
    from oodbench.training import ResumeError

    out = tmp_path / "run"
    _train(out, coco_pairs, stop_after=3)
    before = (out / "config.json").read_bytes()
    with pytest.raises(ResumeError) as err:
        _train(out, coco_pairs, seed=4, lr=1e-3, max_iters=5, num_workers=1)
    msg = str(err.value)
    assert "\n" not in msg and str(out / "last.pth") in msg
    assert "--seed 3 -> 4" in msg and "--lr 7.5e-05 -> 0.001" in msg and "--max-iters None -> 5" in msg
    assert "--num-workers" not in msg  # runtime: may differ
    assert (out / "config.json").read_bytes() == before


def test_resume_anyway_continues_the_stored_run(tmp_path, coco_pairs, capsys):
    full = _train(tmp_path / "full", coco_pairs)
    out = tmp_path / "run"
    _train(out, coco_pairs, stop_after=3)
    capsys.readouterr()
    res = _train(out, coco_pairs, tau=0.5, resume_anyway=True)
    err = capsys.readouterr().err
    assert "--tau 0.5 (kept 0.1)" in err
    assert res.resumed_from == 2 and json.loads((out / "config.json").read_text())["tau"] == 0.1
    a = torch.load(full.out_dir / "last.pth", weights_only=True)["model"]
    b = torch.load(out / "last.pth", weights_only=True)["model"]
    assert all(torch.equal(v, b[k]) for k, v in a.items())


def test_cli_resume_into_the_out_dir_of_another_model_is_one_line(tmp_path, coco_pairs, capsys):
    """``oodbench train --method rpl`` and the torchrun entry point: exit 2, one line, no traceback."""
    from oodbench.cli import main as cli_main
    from oodbench.methods.rpl.train import main as torchrun_main

    out = tmp_path / "run"
    _train(out, coco_pairs, stop_after=3)
    argv = ["--segmenter", "deeplabv3plus_wrn38", "--checkpoint", str(tmp_path / "cityscapes_best.pth"),
            "--data-root", str(tmp_path / "data"), "--out-dir", str(out), "--num-workers", "0", "--no-progress"]
    for run in (lambda: cli_main(["train", "--method", "rpl", *argv]), lambda: torchrun_main(argv)):
        capsys.readouterr()
        code = run()
        err = capsys.readouterr().err
        assert code == 2
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert str(out / "last.pth") in err
        assert "holds deeplabv3plus_small weights, asked for deeplabv3plus_wrn38" in err, err


def test_network_without_the_projector_does_not_fit_an_rpl_corocl_checkpoint(tmp_path, coco_pairs):
    from oodbench.training import CheckpointError

    out = tmp_path / "run"
    _train(out, coco_pairs, stop_after=3)
    with pytest.raises(CheckpointError) as err:
        _train(out, coco_pairs, net=_net(projector=False))
    msg = str(err.value)
    assert "\n" not in msg and str(out / "last.pth") in msg and "unexpected" in msg and "proj_head" in msg, msg
    assert len(msg) < 600
