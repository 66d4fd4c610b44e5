from __future__ import annotations

from oodbench.leaderboard import load, render_markdown, to_frame
from oodbench.published import merge_published
from oodbench.results import Result, load_results, save_result


def _result(method, dataset, synthetic=True, **metrics):
    return Result(method=method, dataset=dataset, benchmark="RoadAnomaly", protocol="fishyscapes",
                  protocol_version="bdlb@03773d6", metrics=metrics, num_frames=8, synthetic=synthetic,
                  git_commit="abc")


def test_save_load_and_render(tmp_path):
    save_result(_result("energy", "road-anomaly", auprc=0.5, auroc=0.9, fpr95=0.3), tmp_path)
    save_result(_result("rpl", "road-anomaly", auprc=0.7, auroc=0.95, fpr95=0.2), tmp_path)
    save_result(_result("msp", "fishyscapes-laf-val", synthetic=False, auprc=0.1, auroc=0.8, fpr95=0.5), tmp_path)
    assert [r.method for r in load_results(tmp_path)] == ["msp", "energy", "rpl"]
    df = load(tmp_path)
    assert set(df["method"]) == {"energy", "rpl", "msp"}
    assert df.loc[df.method == "rpl", "auprc"].item() == 0.7
    md = render_markdown(df)
    assert "## road-anomaly (SYNTHETIC DATA)" in md
    assert "## fishyscapes-laf-val\n" in md  # real data: no mark
    assert "| Method   | AuPRC ↑   | AuROC ↑   | FPR95 ↓   |" in md
    assert "| rpl      | **70.00** | **95.00** | **20.00** |" in md
    assert "| energy   | 50.00     | 90.00     | 30.00     |" in md
    assert "Protocol: fishyscapes (bdlb@03773d6)" in md
    # rows sorted by the first metric, best first
    assert md.index("| rpl") < md.index("| energy")


def test_published_rows_are_marked(tmp_path):
    save_result(_result("rpl", "smiyc-anomaly-test", synthetic=False, auprc=0.8, fpr95=0.1), tmp_path)
    df = merge_published(load(tmp_path), datasets=["smiyc-anomaly-test"])
    md = render_markdown(df)
    assert "| rpl " in md and "| ours " in md
    # the RPL+CoroCL row of the official SMIYC AnomalyTrack-test board, typed from
    # benchmarks.md §6.1 (SegmentMeIfYouCan/segment-me-if-you-can:assets/leaderboard.json): AuPRC, FPR95,
    # sIoU, PPV, mean F1 in %; cells compared without the column padding
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in md.splitlines() if line.startswith("| RPL+CoroCL ")]
    assert rows == [["RPL+CoroCL", "published [1]", "smiyc", "83.49", "11.68", "49.77", "29.96", "30.16"]]
    assert "[1] SegmentMeIfYouCan/segment-me-if-you-can:assets/leaderboard.json" in md
    assert "| UNO " in md


def test_empty():
    assert "(no results)" in render_markdown(to_frame([]))
