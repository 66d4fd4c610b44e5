"""`oodbench evaluate` on the official-layout fixture tree prints the official evaluators' numbers.

Expected values: ``tests/data/fixtures/expected_metrics.json`` (copied, with provenance, from
``shared/fixtures/expected.json``: the unmodified official code run on the same files).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

EXPECTED = json.loads((Path(__file__).parent / "data" / "fixtures" / "expected_metrics.json").read_text())["expected"]
TOL = 1e-9

CASES = {
    # our split -> (expected key, extra CLI args, {our metric: (group, official key)})
    "smiyc-anomaly-val": ("AnomalyTrack-validation", [], {
        "auprc": ("PixBinaryClass", "area_PRC"), "fpr95": ("PixBinaryClass", "tpr95_fpr"),
        "auroc": ("PixBinaryClass", "area_ROC"), "best_f1": ("PixBinaryClass", "best_f1"),
        "best_f1_threshold": ("PixBinaryClass", "best_f1_threshold"),
        "siou": ("SegEval-AnomalyTrack", "sIoU_gt"), "ppv": ("SegEval-AnomalyTrack", "prec_pred"),
        "f1_mean": ("SegEval-AnomalyTrack", "f1_mean")}),
    "smiyc-obstacle-val": ("ObstacleTrack-validation", [], {
        "auprc": ("PixBinaryClass", "area_PRC"), "fpr95": ("PixBinaryClass", "tpr95_fpr"),
        "auroc": ("PixBinaryClass", "area_ROC"), "best_f1": ("PixBinaryClass", "best_f1"),
        "best_f1_threshold": ("PixBinaryClass", "best_f1_threshold"),
        "siou": ("SegEval-ObstacleTrack", "sIoU_gt"), "ppv": ("SegEval-ObstacleTrack", "prec_pred"),
        "f1_mean": ("SegEval-ObstacleTrack", "f1_mean")}),
    "fishyscapes-laf-val": ("fishyscapes-laf-val", ["--layout", "official"], {
        "auprc": ("calculate_metrics_perpixAP", "AP"), "fpr95": ("calculate_metrics_perpixAP", "FPR@95%TPR"),
        "auroc": ("calculate_metrics_perpixAP", "auroc")}),
    "road-anomaly": ("road-anomaly", [], {
        "auprc": ("calculate_metrics_perpixAP", "AP"), "fpr95": ("calculate_metrics_perpixAP", "FPR@95%TPR"),
        "auroc": ("calculate_metrics_perpixAP", "auroc")}),
    "streethazards-test": ("streethazards-test", ["--no-count-check"], {
        "auroc": ("hendrycks_per_image", "mean_auroc"), "auprc": ("hendrycks_per_image", "mean_aupr"),
        "fpr95": ("hendrycks_per_image", "mean_fpr95"),
        "open_miou": ("densehybrid_open_set", "open_mIoU_image_weighted"),
        "closed_miou": ("densehybrid_open_set", "closed_set_mIoU_12")}),
}


@pytest.mark.parametrize("method", ["FixtureGood", "FixtureWeak"])
@pytest.mark.parametrize("split", sorted(CASES))
def test_evaluate_reproduces_official_numbers(fixture_tree, cli, tmp_path, split, method):
    root, _ = fixture_tree
    key, extra, mapping = CASES[split]
    out = tmp_path / "metrics.json"
    proc = cli("evaluate", "--predictions", root, "--method", method, "--dataset", split,
               "--data-root", root, "--json", out, "-q", *extra)
    (got,) = json.loads(out.read_text())  # --json: always a list of records
    assert got["dataset"] == split and got["method"] == method
    for ours, (group, official) in mapping.items():
        want = EXPECTED[key][method][group][official]
        assert got["metrics"][ours] == pytest.approx(want, abs=TOL, rel=0), (ours, group, official)
    # and the printed table shows them (in percent, 2 decimals)
    want_ap = EXPECTED[key][method][mapping["auprc"][0]][mapping["auprc"][1]]
    assert f"{100 * want_ap:.2f}" in proc.stdout


def test_both_fishyscapes_layouts_give_the_same_numbers(fixture_tree, cli, tmp_path):
    root, _ = fixture_tree
    results = []
    for layout in ("official", "preprocessed"):
        out = tmp_path / f"{layout}.json"
        cli("evaluate", "--predictions", root, "--method", "FixtureWeak", "--dataset", "fishyscapes-laf-val",
            "--data-root", root, "--layout", layout, "--json", out, "-q")
        results.append(json.loads(out.read_text())[0]["metrics"])
    assert results[0] == results[1]


def test_ambiguous_layout_is_reported(fixture_tree, cli):
    root, _ = fixture_tree
    proc = cli("evaluate", "--predictions", root, "--method", "FixtureWeak", "--dataset", "fishyscapes-laf-val",
               "--data-root", root, "-q", check=False)
    assert proc.returncode == 2 and "ambiguous layout" in proc.stderr
