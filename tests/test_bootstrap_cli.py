"""Uncertainty in every number (issue #15), through the command line: ``evaluate --bootstrap``
intervals in the JSON and the records, ``compare`` (paired frame bootstrap), ``leaderboard --ci``
(intervals, the non-overlap bold rule, seed aggregates) and ``train-segmenter --seeds``."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from oodbench.cli import main
from oodbench.leaderboard import load, render_markdown, to_frame
from oodbench.results import RecordError, Result, load_results, save_result, validate_record

pytestmark = pytest.mark.filterwarnings("ignore:.*no semantic predictions:UserWarning")

SPLITS = ["road-anomaly", "smiyc-anomaly-val", "streethazards-test"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """A small demo-style synthetic benchmark and stored float16 predictions of three "methods":
    ``good`` (anomalies clearly separated), ``bad`` (barely), ``good-copy`` (``good``'s files); on
    StreetHazards also semantic predictions (``bad``'s noisier), so open-set mIoU is evaluated."""
    from oodbench.datasets import get_split
    from oodbench.datasets.synth import generate
    from oodbench.store import PredictionStore

    base = tmp_path_factory.mktemp("boot")
    root = generate(base / "data", seed=0, size=(64, 128), n_train=2, n_val=8, n_coco=2, n_per_split=8)
    preds = base / "preds"
    rng, sem_rng = np.random.default_rng(0), np.random.default_rng(1)
    for name in SPLITS:
        split = get_split(name, root, check_count=False)
        for fid in split.frame_ids():
            frame = split.load_labels(fid)
            lab = frame.label
            if split.num_classes is not None:
                k = split.num_classes
                known = np.where(frame.semantic < k, frame.semantic, 0)
                for method, right in (("good", 0.9), ("bad", 0.6)):
                    sem = np.where(sem_rng.random(known.shape) < right, known, sem_rng.integers(0, k, known.shape))
                    for m in (method, "good-copy") if method == "good" else (method,):
                        PredictionStore(preds, m).write_semantic(split.key, fid, sem)
            noise = rng.standard_normal(lab.shape)
            shift = 0.5 * rng.standard_normal()  # frames differ: the frame is the resampling unit
            for method, sep in (("good", 2.5), ("bad", 0.3), ("good-copy", 2.5)):
                z = (rng.standard_normal(lab.shape) if method == "bad" else noise) + sep * (lab == 1) + shift
                PredictionStore(preds, method).write_anomaly(split.key, fid, 1 / (1 + np.exp(-z)), dtype="float16")
    return root, preds


def _cli(*argv) -> None:
    assert main([str(a) for a in argv]) == 0


def _evaluate(bench, tmp_path, name, *extra):
    root, preds = bench
    out = tmp_path / f"{name}.json"
    _cli("evaluate", "--predictions", preds, "--method", "good", "--dataset", *SPLITS, "--data-root", root,
         "--no-count-check", "-q", "--json", out, *extra)
    return json.loads(out.read_text())


def test_evaluate_bootstrap_adds_ci_and_spec_to_json_and_records(bench, tmp_path):
    results = tmp_path / "results"
    got = _evaluate(bench, tmp_path, "a", "--bootstrap", "300", "--ci", "0.9", "--seed", "7", "--results", results)
    assert [r["dataset"] for r in got] == SPLITS
    for rec in got:
        spec = rec["bootstrap"]
        assert {k: spec[k] for k in ("n", "level", "seed", "unit")} == {"n": 300, "level": 0.9, "seed": 7,
                                                                         "unit": "frame"}
        for key in ("auprc", "auroc", "fpr95"):
            lo, hi = rec["ci"][key]
            assert lo < hi, (rec["dataset"], key)
            # float16 scores: the binned/official point lies inside its own interval
            assert lo <= rec["metrics"][key] <= hi, (rec["dataset"], key)
    by_split = {r["dataset"]: r for r in got}
    assert {"siou", "f1_mean"} <= set(by_split["smiyc-anomaly-val"]["ci"])  # SegEval components too
    sh = by_split["streethazards-test"]  # open-set / closed-set mIoU at the full-sample thresholds
    for key in ("open_miou", "closed_miou", "open_miou_t5", "anomaly_iou_t6"):
        lo, hi = sh["ci"][key]
        assert lo < hi and lo <= sh["metrics"][key] <= hi, key
    assert all("not_covered" not in r["bootstrap"] for r in got)
    # the records carry the same intervals and pass validation when read back
    records = {r.dataset: r for r in load_results(results)}
    for rec in got:
        assert records[rec["dataset"]].ci == rec["ci"]
        assert records[rec["dataset"]].bootstrap == rec["bootstrap"]


def test_same_seed_identical_intervals_other_seed_differs(bench, tmp_path):
    a = _evaluate(bench, tmp_path, "a", "--bootstrap", "200", "--seed", "3")
    b = _evaluate(bench, tmp_path, "b", "--bootstrap", "200", "--seed", "3")
    c = _evaluate(bench, tmp_path, "c", "--bootstrap", "200", "--seed", "4")
    assert [r["ci"] for r in a] == [r["ci"] for r in b]
    assert [r["ci"] for r in a] != [r["ci"] for r in c]
    plain = _evaluate(bench, tmp_path, "d")
    assert all(r["ci"] == {} and r["bootstrap"] is None for r in plain)  # records: the fields, empty
    assert [r["metrics"] for r in plain] == [r["metrics"] for r in a]  # intervals change no number


def _compare(bench, tmp_path, a, b, n="1000"):
    root, preds = bench
    out = tmp_path / "cmp.json"
    _cli("compare", "--predictions", preds, "--methods", a, b, "--dataset", *SPLITS, "--data-root", root,
         "--no-count-check", "-q", "--bootstrap", n, "--json", out)
    return json.loads(out.read_text())


def test_a_method_compared_with_itself_is_exactly_null(bench, tmp_path):
    got = _compare(bench, tmp_path, "good", "good-copy", n="200")
    assert [r["dataset"] for r in got] == SPLITS
    assert {"open_miou", "closed_miou"} <= set(got[SPLITS.index("streethazards-test")]["metrics"])
    for rec in got:
        assert rec["methods"] == ["good", "good-copy"] and rec["bootstrap"]["n"] == 200
        for key, m in rec["metrics"].items():
            if m["delta"] is None:  # undefined on the full sample (e.g. PPV without any component)
                continue
            assert (m["delta"], m["ci"], m["p_value"]) == (0.0, [0.0, 0.0], 1.0), (rec["dataset"], key)


def test_a_clearly_better_method_has_p_below_0_01(bench, tmp_path):
    for rec in _compare(bench, tmp_path, "good", "bad"):
        for key in ("auprc", "auroc", "fpr95"):
            m = rec["metrics"][key]
            assert m["p_value"] < 0.01, (rec["dataset"], key, m)
            lo, hi = m["ci"]
            assert (0 < lo <= m["delta"] <= hi) if key != "fpr95" else (lo <= m["delta"] <= hi < 0)
        assert rec["values"][0]["auprc"] > rec["values"][1]["auprc"]


def test_a_comparison_with_an_untrained_run_is_marked(bench, tmp_path, capsys):
    import shutil

    from oodbench.compare import render_comparisons
    from oodbench.store import PredictionStore

    root, preds = bench
    copy = tmp_path / "preds"
    shutil.copytree(preds / "anomaly_p" / "bad", copy / "anomaly_p" / "bad")
    shutil.copytree(preds / "anomaly_p" / "good", copy / "anomaly_p" / "good")
    for name in ("road-anomaly", "smiyc-anomaly-val"):
        from oodbench.datasets import get_split

        key = get_split(name, root, check_count=False).key
        PredictionStore(copy, "bad").write_run_manifest(key, {"method": "bad", "untrained": True})
    _cli("compare", "--predictions", copy, "--methods", "good", "bad", "--dataset", "road-anomaly",
         "smiyc-anomaly-val", "--data-root", root, "--no-count-check", "-q", "--bootstrap", "50")
    table = capsys.readouterr().out
    assert table.count("| bad (untrained) ") == 2 and "| good (untrained)" not in table
    assert "(untrained): predictions of a run on random or unfitted weights" in table
    out = tmp_path / "cmp.json"
    _cli("compare", "--predictions", copy, "--methods", "good", "bad", "--dataset", "road-anomaly",
         "--data-root", root, "--no-count-check", "-q", "--bootstrap", "50", "--json", out)
    (rec,) = json.loads(out.read_text())
    assert rec["untrained"] == [False, True]
    rec["untrained"] = [False, False]
    assert "(untrained)" not in render_comparisons([rec])
    assert rec["num_frames"] == rec["expected_frames"] and " of 8 frames)" not in render_comparisons([rec])
    rec["expected_frames"] = rec["num_frames"] + 3  # a comparison on a partial copy of the split
    table = render_comparisons([rec])
    assert f"| road-anomaly ({rec['num_frames']} of {rec['num_frames'] + 3} frames) " in table
    assert "(n of m frames): evaluated on a copy of the split" in table


def test_compare_refuses_other_than_two_methods(bench, capsys):
    root, preds = bench
    code = main(["compare", "--predictions", str(preds), "--methods", "good", "--dataset", "road-anomaly",
                 "--data-root", str(root), "--no-count-check", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "--methods takes exactly two" in err and "Traceback" not in err


def test_compare_does_not_import_torch(bench, tmp_path):
    root, preds = bench
    argv = ["compare", "--predictions", str(preds), "--methods", "good", "bad", "--dataset", "road-anomaly",
            "--data-root", str(root), "--no-count-check", "-q", "--bootstrap", "50", "--json", str(tmp_path / "c.json")]
    code = ("import sys, oodbench.cli as c\n"
            f"assert c.main({argv!r}) == 0\n"
            "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
            "assert not bad, 'imported ' + ', '.join(bad[:5])\n")
    # cwd outside the checkout: `python -c` puts the cwd first on sys.path, where the source
    # oodbench/ would shadow the installed package (CI tests the wheel)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


# -- leaderboard ---------------------------------------------------------------------------------
def _rec(method, auprc, ci=None, seed=None, sha=None, hparams=None, dataset="road-anomaly"):
    return Result(method=method, dataset=dataset, benchmark="RoadAnomaly", protocol="fishyscapes",
                  protocol_version="bdlb", fpr_rule="first_tpr_ge", metrics={"auprc": auprc}, num_frames=8,
                  synthetic=True, hparams=hparams or {"segmenter": "s"}, checkpoint_sha256=sha,
                  ci={"auprc": list(ci)} if ci else {},
                  bootstrap={"n": 1000, "level": 0.95, "seed": 0, "unit": "frame", "method": "percentile"} if ci
                  else None, training_seed=seed)


def _row(md, method):
    (line,) = [ln for ln in md.splitlines() if ln.startswith(f"| {method} ")]
    return [c.strip() for c in line.strip("|").split("|")]


def test_leaderboard_ci_shows_intervals_and_bolds_only_separated_bests():
    apart = to_frame([_rec("a", 0.598, (0.575, 0.620)), _rec("b", 0.40, (0.35, 0.45))])
    md = render_markdown(apart, ci=True)
    assert _row(md, "a") == ["a", "**59.8 [57.5, 62.0]**"] and _row(md, "b") == ["b", "40.0 [35.0, 45.0]"]
    assert "[lo, hi] = 95 % frame bootstrap percentile interval (1000 replicates, seed 0)" in md
    close = to_frame([_rec("a", 0.598, (0.575, 0.620)), _rec("b", 0.59, (0.56, 0.61))])
    md = render_markdown(close, ci=True)
    assert _row(md, "a")[1] == "59.8 [57.5, 62.0]"  # overlapping intervals: no bold
    assert "Bold only where the best interval does not overlap the runner-up's" in md
    # without --ci nothing changes: byte-identical to records without intervals
    plain = to_frame([_rec("a", 0.598), _rec("b", 0.59)])
    assert render_markdown(close) == render_markdown(plain)
    assert "**59.80**" in render_markdown(close)


def test_leaderboard_averages_records_differing_only_in_training_seed(tmp_path):
    dirs = []
    for seed, v in ((1, 0.50), (2, 0.60), (3, 0.70)):
        d = tmp_path / f"seed-{seed}"
        save_result(_rec("rpl", v, seed=seed, sha=f"{seed:064x}"), d)
        dirs.append(d)
    save_result(_rec("energy", 0.55, seed=0, sha="e" * 64), dirs[0])
    df = load(dirs)
    rpl = df[df["method"] == "rpl"].iloc[0]
    assert rpl["n_seeds"] == 3 and rpl["auprc"] == pytest.approx(0.60) and rpl["auprc_std"] == pytest.approx(0.10)
    md = render_markdown(df, ci=True)
    assert _row(md, "rpl") == ["rpl (3 seeds)", "60.0 ± 10.0"]
    assert _row(md, "energy") == ["energy", "55.0"]  # inside rpl's mean ± std: nothing bold
    assert "± = std over training seeds" in md
    # records that differ in more than the seed are not averaged, and never silently
    save_result(_rec("rpl", 0.9, seed=4, sha="f" * 64, hparams={"segmenter": "other"}), tmp_path / "other")
    with pytest.raises(RecordError, match="differ in more than the training seed"):
        load([*dirs, tmp_path / "other"])
    with pytest.raises(RecordError, match="differ in more than the training seed"):
        load([dirs[0], dirs[0]])


def test_record_validation_of_intervals():
    good = _rec("a", 0.5, (0.4, 0.6)).to_dict()
    validate_record(good)
    for change, match in ((dict(ci={"auprc": [0.6, 0.4]}), "lo <= hi"),
                          (dict(ci={"auroc": [0.1, 0.2]}), "does not report"),
                          (dict(ci={"auprc": [40.0, 60.0]}), r"fractions in \[0, 1\]"),
                          (dict(bootstrap=None), "must say how"),
                          (dict(bootstrap={"n": 0, "level": 0.95, "seed": 0, "unit": "frame"}), "bootstrap.n"),
                          (dict(training_seed=True), "training_seed")):
        with pytest.raises(RecordError, match=match):
            validate_record({**good, **change})


# -- training seeds ---------------------------------------------------------------------------
def test_train_segmenter_seeds_runs_once_per_seed_and_records_carry_the_seed(tmp_path, monkeypatch):
    import oodbench.training.segmenter as S
    from oodbench import segmenters
    from oodbench.methods import build

    sys.path.insert(0, str(Path(__file__).parent))
    from test_training_segmenter import TinyCity, _model

    real = S.train_segmenter
    seen = []

    def tiny(cfg, **kw):
        seen.append((cfg.seed, cfg.out_dir))
        return real(cfg, train_data=TinyCity(4), val_data=TinyCity(2), model=_model())

    monkeypatch.setattr(S, "train_segmenter", tiny)
    out = tmp_path / "runs"
    _cli("train-segmenter", "--seeds", "5", "6", "--out-dir", out, "--data-root", tmp_path, "--model",
         "deeplabv3plus_small", "--crop-size", "32", "32", "--batch-size", "2", "--max-iters", "2", "--epochs", "1",
         "--ckpt-every", "2", "--val-every", "0", "--num-workers", "0", "--no-progress")
    assert seen == [(5, str(out / "seed-5")), (6, str(out / "seed-6"))]
    for seed in (5, 6):
        ckpt = out / f"seed-{seed}" / "last.pth"
        assert segmenters.build("deeplabv3plus_small", checkpoint=ckpt, num_classes=19).training_seed == seed
        assert build("maxlogit", segmenter="deeplabv3plus_small", checkpoint=str(ckpt)).training_seed == seed
    assert main(["train-segmenter", "--seeds", "1", "1", "--out-dir", str(out), "--data-root", str(tmp_path)]) == 2
