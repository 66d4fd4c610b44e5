from __future__ import annotations

from oodbench.leaderboard import load, render_markdown, to_frame
from oodbench.published import merge_published
from oodbench.results import Result, load_results, save_result


def _result(method, dataset, synthetic=True, protocol="fishyscapes", **metrics):
    return Result(method=method, dataset=dataset, benchmark="RoadAnomaly", protocol=protocol,
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
    save_result(_result("rpl", "smiyc-anomaly-test", synthetic=False, protocol="smiyc", auprc=0.8, fpr95=0.1),
                tmp_path)
    df = merge_published(load(tmp_path), datasets=["smiyc-anomaly-test"])
    md = render_markdown(df)
    assert "| rpl " in md and "| ours " in md
    # the RPL+CoroCL row of the official SMIYC AnomalyTrack-test board, typed from
    # docs/benchmarks.md §6.1 (SegmentMeIfYouCan/segment-me-if-you-can:assets/leaderboard.json): AuPRC, FPR95,
    # sIoU, PPV, mean F1 in %; cells compared without the column padding (one table per protocol:
    # the protocol is in the table's heading, not a column)
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in md.splitlines() if line.startswith("| RPL+CoroCL ")]
    assert rows == [["RPL+CoroCL", "published [1]", "83.49", "11.68", "49.77", "29.96", "30.16"]]
    assert "Protocol: smiyc (" in md
    assert "[1] SegmentMeIfYouCan/segment-me-if-you-can:assets/leaderboard.json" in md
    assert "| UNO " in md


def test_empty():
    assert "(no results)" in render_markdown(to_frame([]))


def _rec(method, protocol="fishyscapes", fpr_rule="first_tpr_ge", untrained=False, **metrics):
    return Result(method=method, dataset="road-anomaly", benchmark="RoadAnomaly", protocol=protocol,
                  protocol_version=f"{protocol}@1", fpr_rule=fpr_rule, metrics=metrics, num_frames=8,
                  untrained=untrained)


def test_untrained_rows_are_marked_and_never_best(tmp_path):
    save_result(_rec("energy", untrained=True, auprc=0.9, fpr95=0.1), tmp_path)
    save_result(_rec("msp", auprc=0.5, fpr95=0.3), tmp_path)
    df = load(tmp_path)
    assert df.set_index("method").loc["energy", "untrained"]
    md = render_markdown(df)
    assert "| energy (untrained) | 90.00     | 10.00     |" in md
    assert "| msp                | **50.00** | **30.00** |" in md
    assert "(untrained): scored with random or unfitted weights (`--allow-untrained`)" in md


def test_a_record_edited_after_it_was_written_is_marked_and_never_best(tmp_path):
    path = save_result(_rec("energy", auprc=0.5, fpr95=0.3), tmp_path)
    save_result(_rec("msp", auprc=0.6, fpr95=0.4), tmp_path)
    written = path.read_text()
    assert '"digest": "' in written
    (energy,) = [r for r in load_results(tmp_path) if r.method == "energy"]
    assert energy.digest and not energy.edited
    # a careless "fix" of one number in the file
    path.write_text(written.replace('"auprc": 0.5', '"auprc": 0.95'))
    (energy,) = [r for r in load_results(tmp_path) if r.method == "energy"]
    assert energy.edited and energy.metrics["auprc"] == 0.95
    md = render_markdown(load(tmp_path))
    # the edited row would be best in both columns; neither is bold
    assert "| energy (edited) | 95.00     | 30.00     |" in md
    assert "| msp             | **60.00** | **40.00** |" in md
    assert "(edited): the record's content no longer matches the digest" in md
    # written back unchanged, the edit stays visible; reformatting alone is no edit
    again = tmp_path / "again"
    again.mkdir()
    assert save_result(energy, again).read_text() == path.read_text()
    import json

    path.write_text(json.dumps(json.loads(written), indent=None))
    assert not [r for r in load_results(tmp_path) if r.method == "energy"][0].edited


def test_rows_evaluated_on_different_data_are_tagged_and_nothing_is_bold(tmp_path):
    from dataclasses import replace

    a, b = "a" * 64, "b" * 64
    save_result(replace(_rec("energy", auprc=0.5, fpr95=0.3), data_fingerprint=a), tmp_path)
    save_result(replace(_rec("msp", auprc=0.6, fpr95=0.4), data_fingerprint=a), tmp_path)
    md = render_markdown(load(tmp_path))
    assert "[data" not in md and "| msp      | **60.00** |" in md  # one data set: as usual
    # a record of the same split evaluated on another version of its labels
    save_result(replace(_rec("maxlogit", auprc=0.7, fpr95=0.2), data_fingerprint=b), tmp_path)
    # a published row (no fingerprint) is not tagged, and not bold either: nothing is
    save_result(replace(_rec("paper-m", auprc=0.65, fpr95=0.25), notes={"source": "A paper (2023)"}), tmp_path)
    md = render_markdown(load(tmp_path))
    assert "| maxlogit [data 2] | ours" in md and "| msp [data 1]      | ours" in md
    assert "| energy [data 1]   | ours" in md and "| paper-m           | published [1] | 65.00 " in md
    assert "**" not in md.split("## road-anomaly")[1]
    assert "evaluated on 2 different sets of frames or labels" in md
    # records that differ in their data never average as training seeds of one configuration
    import pytest

    from oodbench.results import RecordError

    seeds = tmp_path / "seeds"
    seeds.mkdir()
    save_result(replace(_rec("energy", auprc=0.5), data_fingerprint=a, training_seed=1), seeds)
    other = tmp_path / "seeds2"
    other.mkdir()
    save_result(replace(_rec("energy", auprc=0.5), data_fingerprint=b, training_seed=2), other)
    with pytest.raises(RecordError, match="differ in more than the training seed"):
        load([seeds, other])


def test_one_table_per_protocol_and_best_within_it(tmp_path):
    save_result(_rec("energy", protocol="fishyscapes", auprc=0.5, fpr95=0.3), tmp_path)
    save_result(_rec("msp", protocol="fishyscapes", auprc=0.4, fpr95=0.4), tmp_path)
    save_result(_rec("energy", protocol="exact", auprc=0.6, fpr95=0.2), tmp_path)
    save_result(_rec("energy", protocol="exact", fpr_rule="nearest_recall", auprc=0.6, fpr95=0.1), tmp_path)
    md = render_markdown(load(tmp_path))
    assert md.count("## road-anomaly") == 1
    fish, exact, nearest = (md.split(f"### {h}")[1].split("###")[0] for h in
                            ("Protocol fishyscapes", "Protocol exact\n", "Protocol exact, FPR95 rule nearest_recall"))
    # the better exact numbers do not take the bold from the fishyscapes table
    assert "| energy   | **50.00** | **30.00** |" in fish and "| msp      | 40.00     | 40.00     |" in fish
    assert "| energy   | **60.00** | **20.00** |" in exact and "msp" not in exact
    assert "| energy   | **60.00** | **10.00** |" in nearest
    assert "Protocol: exact (exact@1), FPR95 rule nearest_recall." in nearest
    assert "| Protocol" not in md  # no mixed table left to need that column


def test_published_rows_share_the_table_of_their_protocol(tmp_path):
    save_result(Result(method="rpl", dataset="smiyc-anomaly-test", benchmark="SMIYC AnomalyTrack", protocol="smiyc",
                       protocol_version="PixBinaryClass@1c7804e", fpr_rule="first_tpr_ge",
                       metrics={"auprc": 0.99, "fpr95": 0.5}, num_frames=8), tmp_path)
    md = render_markdown(merge_published(load(tmp_path), datasets=["smiyc-anomaly-test"]))
    block = md.split("## smiyc-anomaly-test")[1]
    assert "### " not in block  # one protocol: one table, ours beside the published rows
    assert "| rpl " in block and "| UNO " in block and "**99.00**" in block
