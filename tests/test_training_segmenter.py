"""Closed-set trainer (oodbench/training/segmenter.py): resume equality, checkpoints, mIoU, CLI."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from oodbench import segmenters
from oodbench.training.logs import read_csv_log
from oodbench.training.segmenter import (
    SegmentationTrainSet,
    SegmenterTrainConfig,
    add_train_segmenter_parser,
    train_segmenter,
)


class TinyCity:
    """Stand-in for CityscapesSegmentation: colour-coded stripes (learnable), a void border."""

    def __init__(self, n: int, h: int = 40, w: int = 48) -> None:
        self.n, self.h, self.w = n, h, w

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        rng = np.random.default_rng(i)
        lab = np.zeros((self.h, self.w), np.uint8)
        cut = int(rng.integers(8, self.h - 8))
        lab[cut:] = 1
        lab[:, : int(rng.integers(4, 12))] = 2
        palette = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200]], np.uint8)
        img = palette[lab] + rng.integers(0, 20, (self.h, self.w, 3)).astype(np.uint8)
        lab[:2] = 255
        return img, lab


def _cfg(out, **kw) -> SegmenterTrainConfig:
    base = dict(out_dir=str(out), model="deeplabv3plus_small", crop_size=(32, 32), batch_size=2, epochs=2,
                ckpt_every=2, num_workers=0, progress=False, seed=4, lr=0.01, scale_min=0.75, scale_max=1.25)
    base.update(kw)
    return SegmenterTrainConfig(**base)


def _model():
    torch.manual_seed(0)
    return segmenters.build("deeplabv3plus_small", num_classes=19)


def _train(out, **kw):
    return train_segmenter(_cfg(out, **kw), train_data=TinyCity(6), val_data=TinyCity(2), model=_model())


def test_resumed_training_ends_with_identical_weights(tmp_path):
    full = _train(tmp_path / "full")
    assert full.iteration == full.total_iters == 6 and not full.stopped_early
    killed = _train(tmp_path / "resumed", stop_after=3)  # checkpoint at 2, "killed" after 3
    assert killed.stopped_early and killed.iteration == 3
    resumed = _train(tmp_path / "resumed")
    assert resumed.resumed_from == 2 and resumed.iteration == 6
    a = torch.load(tmp_path / "full" / "last.pth", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "last.pth", weights_only=True)
    assert a["iteration"] == b["iteration"] == 6
    for k, v in a["model_state"].items():
        assert torch.equal(v, b["model_state"][k]), k
    la = [(r["iteration"], r["total"]) for r in read_csv_log(tmp_path / "full" / "train.csv")]
    lb = [(r["iteration"], r["total"]) for r in read_csv_log(tmp_path / "resumed" / "train.csv")]
    assert la == lb and len(la) == 6


def test_checkpoint_loads_into_the_registered_segmenter(tmp_path):
    res = _train(tmp_path / "run", max_iters=2)
    ckpt = torch.load(res.out_dir / "last.pth", weights_only=True)
    assert {"model_state", "optimizer", "iteration", "epoch", "config", "rng", "segmenter"} <= set(ckpt)
    model = segmenters.build("deeplabv3plus_small", checkpoint=str(res.out_dir / "last.pth"))
    for k, v in model.state_dict().items():
        assert torch.equal(v, ckpt["model_state"][k])
    assert (res.out_dir / "iter_000002.pth").is_file() and (res.out_dir / "config.json").is_file()


def test_only_the_newest_iteration_checkpoints_are_kept(tmp_path):
    res = _train(tmp_path / "run", ckpt_every=1, max_iter_ckpts=2)
    assert sorted(p.name for p in res.out_dir.glob("iter_*.pth")) == ["iter_000005.pth", "iter_000006.pth"]
    assert torch.load(res.out_dir / "last.pth", weights_only=True)["iteration"] == 6


def test_validation_logs_miou_and_training_learns(tmp_path):
    res = _train(tmp_path / "run", epochs=12, val_every=9, lr=0.05)
    rows = read_csv_log(res.out_dir / "val.csv")
    assert [r["iteration"] for r in rows] == ["9", "18", "27", "36"]
    # the logged mIoU of the final weights, recomputed here: argmax of the ImageNet-normalised
    # forward, 19-class confusion of the labelled pixels, mean IoU of the classes present
    model = segmenters.build("deeplabv3plus_small", num_classes=19).eval()
    model.load_state_dict(torch.load(res.out_dir / "last.pth", weights_only=True)["model_state"])
    mean, std = torch.tensor((0.485, 0.456, 0.406))[:, None, None], torch.tensor((0.229, 0.224, 0.225))[:, None, None]
    conf = np.zeros((19, 19), np.int64)
    for img, lab in (TinyCity(2)[i] for i in range(2)):
        with torch.no_grad():
            pred = model(((torch.from_numpy(img).permute(2, 0, 1).float() / 255 - mean) / std)[None]).argmax(1)[0]
        keep = lab != 255
        np.add.at(conf, (lab[keep], pred.numpy()[keep]), 1)
    union = conf.sum(0) + conf.sum(1) - np.diag(conf)
    assert float(rows[-1]["miou"]) == pytest.approx(np.mean(np.diag(conf)[union > 0] / union[union > 0]), abs=1e-12)
    losses = [float(r["total"]) for r in read_csv_log(res.out_dir / "train.csv")]
    assert np.mean(losses[-6:]) < np.mean(losses[:6])  # the stripes are learnable


def test_validation_miou_by_hand(tmp_path):
    """A model predicting class 0 everywhere: IoU_0 = |gt 0| / |labelled|, IoU_1 = IoU_2 = 0."""
    from oodbench.training.segmenter import SegmenterTrainer

    class Constant(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            out = torch.zeros(x.shape[0], 19, *x.shape[2:])
            out[:, 0] = 1.0
            return out + self.w

    val = TinyCity(3)
    trainer = SegmenterTrainer(_cfg(tmp_path), train_data=TinyCity(4), val_data=val, model=Constant())
    trainer.setup()
    got = trainer.evaluate_miou()
    labels = np.stack([val[i][1] for i in range(3)])
    iou0 = (labels == 0).sum() / (labels != 255).sum()
    assert got["iou_0"] == pytest.approx(iou0) and got["iou_1"] == 0.0 and got["iou_2"] == 0.0
    assert np.isnan(got["iou_5"])  # absent from ground truth and prediction: left out of the mean
    assert got["miou"] == pytest.approx(iou0 / 3)


def test_augmentation_is_keyed_by_sample_and_epoch():
    ds = SegmentationTrainSet(TinyCity(3), (24, 24), (0.5, 2.0), 0.5, seed=1)
    a, b = ds[(1, 0)], ds[(1, 0)]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(ds[(1, 0)][0], ds[(1, 1)][0])
    assert a[0].shape == (3, 24, 24) and a[1].dtype == torch.int64
    assert set(torch.unique(a[1]).tolist()) <= {0, 1, 2, 255}


def test_cli_parser_has_the_documented_flags():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    add_train_segmenter_parser(sub)
    args = parser.parse_args(["train-segmenter", "--model", "deeplabv3plus_small", "--data-root", "R",
                              "--crop-size", "128", "256", "--optimizer", "adamw", "--max-iters", "5", "--no-amp"])
    assert args.model == "deeplabv3plus_small" and args.crop_size == [128, 256] and args.amp is False
    assert callable(args.func)


def test_missing_data_root_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="--data-root"):
        train_segmenter(_cfg(tmp_path), model=_model())


@pytest.mark.slow
def test_synthetic_closed_set_model_reaches_stated_miou(synth_root, tmp_path):
    """The synthetic benchmark's closed-set model: deeplabv3plus_small, 128x256, AdamW 2e-3, 30 epochs
    (540 iterations, batch 8). Measured on the shared 2-core dev machine, 1 thread: val mIoU 0.754
    (mean over the 12 classes the synthetic world contains) in 144 CPU s (167 s wall, 0.3 s/iteration).
    The speed is tests/benchmarks/test_bench_training.py (target <= 600 CPU s), not asserted here."""
    cfg = SegmenterTrainConfig(out_dir=str(tmp_path / "seg"), data_root=str(synth_root), crop_size=(128, 256),
                               batch_size=8, epochs=30, optimizer="adamw", lr=2e-3, weight_decay=1e-4,
                               scale_min=0.75, scale_max=1.5, ckpt_every=270, num_workers=0, progress=False)
    res = train_segmenter(cfg)
    print(f"synthetic closed-set model: val mIoU {res.last_val['miou']:.4f} after {res.iteration} iterations")
    assert res.last_val["miou"] >= 0.70, res.last_val


@pytest.mark.slow
def test_cli_training_resumes_after_interruption(synth_root, tmp_path, cli):
    out = tmp_path / "run"
    common = ["train-segmenter", "--data-root", str(synth_root), "--out-dir", str(out), "--crop-size", "64", "128",
              "--batch-size", "2", "--max-iters", "4", "--ckpt-every", "2", "--num-workers", "0", "--no-progress"]
    cli(*common, "--stop-after", "3")
    assert read_csv_log(out / "train.csv")[-1]["iteration"] == "3"
    assert torch.load(out / "last.pth", weights_only=True)["iteration"] == 2
    cli(*common)
    rows = read_csv_log(out / "train.csv")
    assert [r["iteration"] for r in rows] == ["1", "2", "3", "4"]
    assert torch.load(out / "last.pth", weights_only=True)["iteration"] == 4


# ------------------------------------------------------------------------------------ resume guards
def _stopped_run(out):
    """A run "killed" after iteration 3 with its checkpoint of iteration 2 on disk."""
    _train(out, stop_after=3)
    return (out / "config.json").read_bytes(), (out / "last.pth").read_bytes()


def test_resume_with_another_configuration_is_refused_and_names_the_fields(tmp_path):
    from oodbench.training import ResumeError

    out = tmp_path / "run"
    config_before, ckpt_before = _stopped_run(out)
    with pytest.raises(ResumeError) as err:
        _train(out, seed=5, lr=0.02, max_iters=4)
    msg = str(err.value)
    assert "\n" not in msg and str(out / "last.pth") in msg
    for flag in ("--seed 4 -> 5", "--lr 0.01 -> 0.02", "--max-iters None -> 4", "--resume-anyway"):
        assert flag in msg, msg
    assert "--num-workers" not in msg
    # nothing was touched: config.json keeps the run's values, the checkpoint is the same file
    assert (out / "config.json").read_bytes() == config_before
    assert (out / "last.pth").read_bytes() == ckpt_before


def test_runtime_fields_may_differ_on_resume(tmp_path):
    _stopped_run(tmp_path / "run")
    res = _train(tmp_path / "run", num_workers=1, log_every=2, ckpt_every=3, progress=False, val_every=5)
    assert res.resumed_from == 2 and res.iteration == 6
    full = _train(tmp_path / "full")
    a = torch.load(full.out_dir / "last.pth", weights_only=True)["model_state"]
    b = torch.load(res.out_dir / "last.pth", weights_only=True)["model_state"]
    assert all(torch.equal(v, b[k]) for k, v in a.items())


def test_resume_anyway_keeps_the_stored_configuration(tmp_path, capsys):
    out = tmp_path / "run"
    _stopped_run(out)
    capsys.readouterr()
    res = _train(out, lr=0.5, seed=9, resume_anyway=True)
    err = capsys.readouterr().err
    assert "--resume-anyway" in err and "--lr 0.5 (kept 0.01)" in err and "--seed 9 (kept 4)" in err
    assert res.resumed_from == 2 and res.iteration == 6
    stored = json.loads((out / "config.json").read_text())
    assert stored["lr"] == 0.01 and stored["seed"] == 4  # never the ignored values
    assert torch.load(out / "last.pth", weights_only=True)["config"]["lr"] == 0.01
    full = _train(tmp_path / "full")  # and the weights are those of the stored configuration
    a = torch.load(full.out_dir / "last.pth", weights_only=True)["model_state"]
    b = torch.load(out / "last.pth", weights_only=True)["model_state"]
    assert all(torch.equal(v, b[k]) for k, v in a.items())


def test_resume_into_the_out_dir_of_another_model_is_one_line(tmp_path, capsys):
    """``oodbench train-segmenter`` (in process): exit 2, one line naming the file and both models."""
    from oodbench.cli import main

    out = tmp_path / "run"
    _stopped_run(out)
    capsys.readouterr()
    code = main(["train-segmenter", "--model", "deeplabv3plus_wrn38", "--out-dir", str(out),
                 "--data-root", str(tmp_path / "data"), "--crop-size", "32", "32", "--batch-size", "2",
                 "--epochs", "2", "--ckpt-every", "2", "--num-workers", "0", "--no-progress", "--seed", "4",
                 "--scale-min", "0.75", "--scale-max", "1.25"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert str(out / "last.pth") in err
    assert "holds deeplabv3plus_small weights, asked for deeplabv3plus_wrn38" in err, err


def test_weights_that_do_not_fit_the_model_are_one_line(tmp_path):
    """A model passed in Python that does not match the checkpoint: counts and a few key names."""
    from oodbench.training import CheckpointError

    out = tmp_path / "run"
    _stopped_run(out)
    torch.manual_seed(0)
    other = segmenters.build("deeplabv3plus_small", num_classes=5)
    with pytest.raises(CheckpointError) as err:
        train_segmenter(_cfg(out, resume_anyway=True, num_classes=5), train_data=TinyCity(6), model=other)
    msg = str(err.value)
    assert "\n" not in msg and str(out / "last.pth") in msg and "shape" in msg and len(msg) < 600, msg


def test_temporary_files_left_by_a_kill_are_ignored_and_removed(tmp_path):
    """A SIGKILL during a checkpoint write leaves ``.tmp-*`` files: never resumed from, removed on resume."""
    out = tmp_path / "run"
    _stopped_run(out)
    torn = [out / ".tmp-last.pth.k1l2.pth", out / ".tmp-iter_000004.pth.x9y8.pth", out / ".tmp-config.json.ab.json"]
    for p in torn:
        p.write_bytes(b"PK\x03\x04 half a zip")  # a torn torch.save
    res = _train(out)
    assert res.resumed_from == 2 and res.iteration == 6
    assert not any(p.exists() for p in torn)
    assert not list(out.glob(".tmp-*"))


def test_resume_with_another_world_size_is_refused(tmp_path, capsys):
    """--batch-size is per process: resuming a 2-process checkpoint in 1 process halves the global batch."""
    from oodbench.training import ResumeError

    out = tmp_path / "run"
    _stopped_run(out)
    payload = torch.load(out / "last.pth", weights_only=True)
    payload["world_size"] = 2                                  # as if written under torchrun -nproc 2
    torch.save(payload, out / "last.pth")
    before = (out / "last.pth").read_bytes()
    with pytest.raises(ResumeError) as err:
        _train(out)
    msg = str(err.value)
    assert "\n" not in msg and msg == (
        f"{out / 'last.pth'} was written by 2 process(es), this run has 1: the global batch would change "
        "from 4 to 2; resume with --nproc_per_node 2, or add --resume-anyway to continue with the new world size")
    assert (out / "last.pth").read_bytes() == before
    capsys.readouterr()
    res = _train(out, resume_anyway=True)
    assert res.resumed_from == 2 and "global batch would change from 4 to 2" in capsys.readouterr().err
