"""The published-numbers data file: well-formed, and SMIYC rows equal the official leaderboard."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from oodbench.leaderboard import METRIC_COLUMNS
from oodbench.published import load_published

SHARED_LEADERBOARD = Path(__file__).resolve().parents[2] / "shared" / "data" / "smiyc-leaderboard.json"


def test_entries_are_well_formed():
    data = load_published()
    assert data["entries"]
    for e in data["entries"]:
        assert e["source"] and e["method"] and e["dataset"] and e["protocol"]
        assert set(e["metrics"]) <= set(METRIC_COLUMNS)
        for v in e["metrics"].values():
            # fractions (not percentages) typed from percentages with e["decimals"] (else 2) digits: the exact
            # values are checked against the official board below (needs ../shared); here every value
            # must at least be such a rounded percentage
            assert 0.0 <= v <= 1.0, e
            assert round(v * 100, e.get("decimals", 2)) == pytest.approx(v * 100, abs=1e-9), e


@pytest.mark.skipif(not SHARED_LEADERBOARD.is_file(), reason="../shared/data/smiyc-leaderboard.json absent")
def test_smiyc_rows_match_the_official_leaderboard_file():
    official = json.loads(SHARED_LEADERBOARD.read_text())
    tracks = {
        "smiyc-anomaly-test": ("anomaly_track", "AnomalyTrack-test", "SegEval-AnomalyTrack"),
        "smiyc-obstacle-test": ("obstacle_track", "ObstacleTrack-test", "SegEval-ObstacleTrack"),
        "smiyc-laf-noknown": ("laf_no_known", "LostAndFound-testNoKnown", "SegEval-ObstacleTrack"),
    }
    fields = {"auprc": "PixBinaryClass-area_PRC", "fpr95": "PixBinaryClass-tpr95_fpr",
              "siou": "{seg}-sIoU_gt", "ppv": "{seg}-prec_pred", "f1_mean": "{seg}-f1_mean"}
    checked = 0
    for e in load_published()["entries"]:
        if e["dataset"] not in tracks:
            continue
        track, split, seg = tracks[e["dataset"]]
        name = e["method"].split(" (")[0]
        candidates = [r for r in official[track]
                      if r["method"].strip().split(" (")[0] == name and bool(r.get("requires_ood")) == e["uses_ood_data"]]
        assert candidates, f"{e['method']} (ood={e['uses_ood_data']}) not on the official {track} board"
        tol = 0.5 * 10 ** -e["decimals"] / 100 + 1e-9  # typed values are rounded percentages
        ok = False
        for row in candidates:
            if all(abs(row[f"{split}-{fields[k].format(seg=seg)}"] - v) <= tol for k, v in e["metrics"].items()):
                ok = True
        assert ok, f"{e['dataset']} {e['method']}: {e['metrics']} not within {tol} of the official values"
        checked += 1
    assert checked >= 30
