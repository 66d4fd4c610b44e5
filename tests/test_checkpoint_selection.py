"""Checkpoint selection (best-<split>-<metric>.pth, selected_on), validation from an epoch, fine-tuning."""
from __future__ import annotations

import json
import math

import pytest
import torch

from oodbench.training.selection import BestTracker, parse_rules

from _helpers import TinyCity, rpl_train as _train




def test_rules_and_directions():
    rules = parse_rules("*:auprc, a:fpr95, *:auprc")
    assert [(r.split, r.metric) for r in rules] == [("*", "auprc"), ("a", "fpr95")]
    t = BestTracker(rules)
    assert t.improved({"a/auprc": 0.5, "a/fpr95": 0.4, "b/auprc": math.nan}, 10) == [("a", "auprc", 0.5), ("a", "fpr95", 0.4)]
    assert t.improved({"a/auprc": 0.5, "a/fpr95": 0.5, "b/auprc": 0.1}, 20) == [("b", "auprc", 0.1)]  # tie, worse, first
    assert t.improved({"a/auprc": 0.6, "a/fpr95": 0.3, "b/auprc": 0.0}, 30) == [("a", "auprc", 0.6), ("a", "fpr95", 0.3)]
    again = BestTracker(rules)
    again.load_state_dict(t.state_dict())
    assert again.best == t.best == {"a:auprc": {"value": 0.6, "iteration": 30}, "a:fpr95": {"value": 0.3, "iteration": 30},
                                    "b:auprc": {"value": 0.1, "iteration": 20}}
    with pytest.raises(ValueError, match="reports no 'c/auroc'"):
        BestTracker(parse_rules("c:auroc")).improved({"a/auroc": 1.0}, 1)
    for bad in ("auprc", "a:iou", ":auprc"):
        with pytest.raises(ValueError, match="--select"):
            parse_rules(bad)


def _validator(values):
    """A validator reporting ``values[iteration]`` for split 'v' (AuPRC) and 'w' (FPR95)."""
    def validate(model, iteration):
        auprc, fpr = values[iteration]
        return {"v/auprc": auprc, "w/fpr95": fpr}
    return validate


def test_periodic_validation_keeps_the_best_checkpoint_per_rule(tmp_path, coco_pairs):
    values = {2: (0.3, 0.5), 4: (0.7, 0.6), 6: (0.5, 0.2), 8: (0.6, 0.9)}
    seen = []

    def validator(model, iteration):
        seen.append(iteration)
        return _validator(values)(model, iteration)

    out = tmp_path / "run"
    res = _train(out, coco_pairs, validator=validator, val_every=2, val_from_epoch=1, max_iters=8, epochs=4,
                 select="v:auprc,w:fpr95")  # 6 images, batch 2: 3 iterations per epoch
    assert seen == [4, 6, 8] and res.iteration == 8  # from epoch 1 on (iteration > 3), plus the last
    best_v = torch.load(out / "best-v-auprc.pth", weights_only=True)
    best_w = torch.load(out / "best-w-fpr95.pth", weights_only=True)
    assert best_v["selected_on"] == "v" and best_v["iteration"] == 4 and best_v["selection"]["value"] == 0.7
    assert best_w["selected_on"] == "w" and best_w["iteration"] == 6 and best_w["selection"]["metric"] == "fpr95"
    last = torch.load(out / "last.pth", weights_only=True)
    assert "selected_on" not in last and last["selection_best"]["v:auprc"] == {"value": 0.7, "iteration": 4}
    assert not all(torch.equal(v, last["model"][k]) for k, v in best_v["model"].items())  # earlier weights


def test_selection_survives_resume(tmp_path, coco_pairs):
    values = {2: (0.9, 0.5), 4: (0.1, 0.6), 6: (0.5, 0.2)}
    out = tmp_path / "run"
    kw = dict(validator=_validator(values), val_every=2, max_iters=6, select="v:auprc")
    _train(out, coco_pairs, stop_after=4, **kw)
    _train(out, coco_pairs, **kw)
    assert torch.load(out / "best-v-auprc.pth", weights_only=True)["iteration"] == 2  # 0.5 at 6 does not beat 0.9


def test_select_needs_validation_and_known_splits(tmp_path, coco_pairs):
    with pytest.raises(ValueError, match="--select \\*:auprc: needs periodic validation"):
        _train(tmp_path / "a", coco_pairs, select="*:auprc", max_iters=1)


def test_finetune_from_an_rpl_checkpoint_with_extra_data(tmp_path, coco_pairs, monkeypatch):
    """--finetune-from loads every weight of an RPL file; --extra-data appends the extra sets to Cityscapes."""
    from oodbench.datasets import extra
    from oodbench.methods.rpl.train import RPLTrainConfig, RPLTrainer

    first = _train(tmp_path / "first", coco_pairs, max_iters=2)
    asked = []

    def fake_sets(names, root, short_side=None):
        asked.append((names, str(root), short_side))
        return [TinyCity(3, 44, 60)]

    monkeypatch.setattr(extra, "build_extra_training_sets", fake_sets)
    cfg = RPLTrainConfig(out_dir=str(tmp_path / "ft"), segmenter="deeplabv3plus_small", finetune_from=str(first.out_dir / "last.pth"),
                         extra_data="vistas,wilddash2", data_root=str(tmp_path), crop_size=(32, 32), batch_size=2,
                         epochs=10, num_workers=0, progress=False, max_views=64, val_splits="none")
    trainer = RPLTrainer(cfg, city=TinyCity(6), coco=coco_pairs)
    trainer.setup()
    stored = torch.load(first.out_dir / "last.pth", weights_only=True)["model"]
    assert all(torch.equal(v, trainer.model.state_dict()[k]) for k, v in stored.items())
    assert asked == [("vistas,wilddash2", str(tmp_path), 1024)] and len(trainer.train_set) == 9
    assert trainer.total_iters == 10 * 4 and trainer.optimizer.state_dict()["state"] == {}  # fresh optimizer and schedule
    bad = RPLTrainConfig(**{**cfg.__dict__, "finetune_from": str(first.out_dir / "last.pth"), "projector": "mlp"})
    with pytest.raises(ValueError, match="--finetune-from .* does not fit the model: .*proj_head"):
        RPLTrainer(bad, city=TinyCity(6), coco=coco_pairs).setup()


# ------------------------------------------------------------------------------------ end to end (synthetic)
@pytest.fixture(scope="module")
def synth_rpl(rpl_synth, tmp_path_factory):
    """(work folder, data root, COCO with OE masks, closed-set weights)."""
    return (tmp_path_factory.mktemp("paper"), *rpl_synth)


def _train_cli(out, data, *extra):
    from oodbench.cli import main

    d, root, coco, ckpt = data
    return main(["train", "--method", "rpl", "--segmenter", "deeplabv3plus_small", "--checkpoint", str(ckpt),
                 "--data-root", str(root), "--coco-root", str(coco), "--out-dir", str(out), "--crop-size", "64", "64",
                 "--batch-size", "2", "--num-workers", "0", "--no-progress", "--max-views", "64", *extra])


@pytest.mark.slow
def test_paper_recipe_selects_and_the_record_says_so(synth_rpl, capsys):
    """A paper-recipe run (periodic validation) writes best-* files; a record made from one carries selected_on."""
    from oodbench.cli import main

    d, root, _, _ = synth_rpl
    out = d / "paper"
    assert _train_cli(out, synth_rpl, "--recipe", "paper", "--max-iters", "4", "--val-every", "2",
                      "--val-from-epoch", "0", "--val-max-frames", "2") == 0
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["recipe"], cfg["reference_quirks"], cfg["amp"], cfg["epochs"]) == ("paper", True, False, 80)
    best = sorted(p.name for p in out.glob("best-*.pth"))
    assert best == ["best-fishyscapes-laf-val-auprc.pth", "best-fishyscapes-static-val-auprc.pth",
                    "best-road-anomaly-auprc.pth", "best-smiyc-anomaly-val-auprc.pth", "best-smiyc-obstacle-val-auprc.pth"]
    results = d / "results"
    assert main(["run", "--method", "rpl", "--segmenter", "deeplabv3plus_small", "--checkpoint",
                 str(out / "best-road-anomaly-auprc.pth"), "--dataset", "road-anomaly", "--data-root", str(root),
                 "--out", str(d / "store"), "--results", str(results), "-q"]) == 0
    record = json.loads(next(results.glob("rpl__road-anomaly__*.json")).read_text())
    assert record["selected_on"] == "road-anomaly" and record["hparams"]["train_recipe"] == "paper"
    assert "(checkpoint selected on this split)" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("options", [("--corocl-weight", "0"), ("--anchors", "coco-ood,coco-inlier", "--contrast",
                                                                  "coco-ood,coco-inlier", "--projector", "mlp-bn")])
def test_ablations_train_on_the_synthetic_benchmark(synth_rpl, options):
    from oodbench.training.logs import read_csv_log

    d = synth_rpl[0]
    out = d / ("rpl-only" if "--corocl-weight" in options else "ablation")
    assert _train_cli(out, synth_rpl, "--max-iters", "3", "--val-splits", "none", *options) == 0
    rows = read_csv_log(out / "train.csv")
    active = [r["corocl_active"] for r in rows]
    assert active == (["0"] * 3 if "--corocl-weight" in options else ["1"] * 3)
    assert all(math.isfinite(float(r["total"])) for r in rows)


@pytest.mark.slow
def test_run_postprocess_flag_wraps_the_method(synth_rpl, capsys):
    """``oodbench run --postprocess ground-focus`` scores through apply_postprocess; the record says so."""
    from oodbench.cli import main

    d, root, _, ckpt = synth_rpl
    common = ["run", "--method", "energy", "--segmenter", "deeplabv3plus_small", "--checkpoint", str(ckpt),
              "--dataset", "road-anomaly", "--data-root", str(root), "-q"]
    assert main([*common, "--postprocess", "ground-focus", "--out", str(d / "gf"), "--results", str(d / "gf-res")]) == 0
    record = json.loads(next((d / "gf-res").glob("energy__road-anomaly__*.json")).read_text())
    assert record["hparams"]["postprocess"] == "ground-focus" and record["selected_on"] is None
    capsys.readouterr()
    assert main([*common, "--postprocess", "sky-focus", "--out", str(d / "x"), "--results", str(d / "x-res")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--postprocess: unknown post-process 'sky-focus'" in err
