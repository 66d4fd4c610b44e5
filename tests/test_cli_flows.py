"""The CLI flows a user runs, end to end through the real console script, on the synthetic benchmark."""
from __future__ import annotations

import json
import zipfile

import pytest

LABELLED = ["fishyscapes-laf-val", "fishyscapes-static-val", "road-anomaly", "smiyc-anomaly-val",
            "smiyc-laf-noknown", "smiyc-obstacle-val", "streethazards-test"]


#: official protocol of each labelled split (the third part of a record's file name)
PROTOCOLS = {"fishyscapes-laf-val": "fishyscapes", "fishyscapes-static-val": "fishyscapes",
             "road-anomaly": "fishyscapes", "smiyc-anomaly-val": "smiyc", "smiyc-laf-noknown": "smiyc",
             "smiyc-obstacle-val": "smiyc", "streethazards-test": "streethazards"}


def record(folder, split, method="energy"):
    return json.loads((folder / f"{method}__{split}__{PROTOCOLS[split]}.json").read_text())





@pytest.fixture(scope="module")
def energy_run(synth_root, tmp_path_factory, cli, segmenter_ckpt):
    work = tmp_path_factory.mktemp("energy_run")
    proc = cli("run", "--method", "energy", "--segmenter", "deeplabv3plus_small", "--checkpoint", segmenter_ckpt,
               "--dataset", "all", "--data-root", synth_root, "--out", work / "out", "--results", work / "results",
               "-q")
    return work, proc


def test_list_datasets_finds_every_synthetic_split(synth_root, cli):
    out = cli("list", "datasets", "--data-root", synth_root).stdout
    for name in LABELLED + ["smiyc-anomaly-test", "smiyc-obstacle-test"]:
        line = next(l for l in out.splitlines() if l.startswith(name))
        assert line.rstrip().endswith("found"), line


def test_run_all_writes_records_and_prints_marked_tables(energy_run):
    work, proc = energy_run
    records = sorted(p.name for p in (work / "results").iterdir())
    assert records == sorted(f"energy__{n}__{PROTOCOLS[n]}.json" for n in LABELLED)
    assert "SYNTHETIC DATA" in proc.stdout and "## road-anomaly" in proc.stdout
    rec = record(work / "results", "smiyc-anomaly-val")
    assert rec["protocol"] == "smiyc" and rec["synthetic"] is True
    assert {"auprc", "fpr95", "best_f1", "best_f1_threshold", "siou", "ppv", "f1_mean"} <= set(rec["metrics"])
    assert rec["hparams"] == {"segmenter": "deeplabv3plus_small", "temperature": 1.0}
    assert rec["oodbench_version"] and rec["data_fingerprint"] and rec["plugin"]["distribution"] == "oodbench"
    assert rec["untrained"] is False and rec["fpr_rule"] == "first_tpr_ge" and rec["checkpoint_sha256"]
    sh = record(work / "results", "streethazards-test")
    assert sh["protocol"] == "streethazards" and {"open_miou", "closed_miou"} <= set(sh["metrics"])
    # SMIYC predictions are stored as float16 under the persistence name
    assert (work / "out" / "anomaly_p" / "energy" / "AnomalyTrack-all").is_dir()


def test_a_partial_split_copy_is_marked_and_never_bold(energy_run, synth_root, cli, tmp_path):
    import shutil

    work, _ = energy_run
    full = record(work / "results", "road-anomaly")
    assert full["expected_frames"] == full["num_frames"] == 8
    # a user's copy of RoadAnomaly missing one frame, evaluated with --no-count-check
    root = tmp_path / "data"
    shutil.copytree(synth_root / "RoadAnomaly_jpg", root / "RoadAnomaly_jpg")
    shutil.copy(synth_root / "oodbench_manifest.json", root)
    listing = root / "RoadAnomaly_jpg" / "frame_list.json"
    names = json.loads(listing.read_text())
    listing.write_text(json.dumps(names[1:]))  # the official list, without its first frame
    proc = cli("evaluate", "--predictions", work / "out", "--method", "energy", "--dataset", "road-anomaly",
               "--data-root", root, check=False)
    assert proc.returncode == 2 and "expected 8 frames" in proc.stderr  # refused unless asked
    shutil.copytree(work / "out" / "anomaly_p" / "energy", tmp_path / "out" / "anomaly_p" / "energy-partial")
    (part,) = json.loads(cli("evaluate", "--predictions", tmp_path / "out", "--method", "energy-partial",
                             "--dataset", "road-anomaly", "--data-root", root, "--no-count-check", "--json", "-",
                             "--results", tmp_path / "results").stdout)
    assert (part["num_frames"], part["expected_frames"]) == (7, 8)
    # the partial row may have the best AuPRC: it is marked and never bold; the complete row is
    from dataclasses import replace

    from oodbench.results import Result, save_result

    stored = Result.from_dict(part)
    assert stored.digest and not stored.edited
    better = replace(stored, metrics={**part["metrics"], "auprc": 0.99}, digest="")  # changed, and re-digested
    save_result(better, tmp_path / "results")
    shutil.copy(work / "results" / "energy__road-anomaly__fishyscapes.json", tmp_path / "results")
    board = cli("leaderboard", "--results", tmp_path / "results").stdout
    (row,) = [line for line in board.splitlines() if line.startswith("| energy-partial")]
    assert row.startswith("| energy-partial (7 of 8 frames) ") and "**" not in row and "99.00" in row
    (ours,) = [line for line in board.splitlines() if line.startswith("| energy ")]
    assert f"**{100 * full['metrics']['auprc']:.2f}**" in ours
    assert "(n of m frames): evaluated on a copy of the split with another frame count" in board


def test_rerun_skips_stored_frames(energy_run, synth_root, cli, segmenter_ckpt):
    work, _ = energy_run
    cli("run", "--method", "energy", "--segmenter", "deeplabv3plus_small", "--checkpoint", segmenter_ckpt,
        "--dataset", "road-anomaly", "--data-root", synth_root, "--out", work / "out", "--results",
        work / "results2", "-q")
    rec = record(work / "results2", "road-anomaly")
    assert rec["notes"]["run"]["predicted"] == 0 and rec["notes"]["run"]["skipped"] == rec["num_frames"]
    first = record(work / "results", "road-anomaly")
    assert rec["metrics"] == first["metrics"]


def test_rerun_with_other_hparams_is_refused(energy_run, synth_root, cli, segmenter_ckpt):
    work, _ = energy_run
    proc = cli("run", "--method", "energy", "--param", "temperature=2", "--segmenter", "deeplabv3plus_small",
               "--checkpoint", segmenter_ckpt, "--dataset", "road-anomaly", "--data-root", synth_root, "--out", work / "out",
               "--results", work / "results3", "-q", check=False)
    assert proc.returncode == 2 and "holds predictions of a different configuration" in proc.stderr


def test_evaluate_stored_predictions_without_a_model(energy_run, synth_root, cli, tmp_path):
    work, _ = energy_run
    cli("evaluate", "--predictions", work / "out", "--method", "energy", "--dataset", "road-anomaly",
        "--data-root", synth_root, "--json", tmp_path / "m.json", "-q")
    (got,) = json.loads((tmp_path / "m.json").read_text())  # --json: always a list of records
    assert got["dataset"] == "road-anomaly" and got["method"] == "energy" and got["protocol"] == "fishyscapes"
    run = record(work / "results", "road-anomaly")
    assert got["metrics"] == run["metrics"]


def test_missing_and_corrupt_predictions_are_reported(energy_run, synth_root, cli, tmp_path):
    import shutil

    work, _ = energy_run
    pred = tmp_path / "pred"
    shutil.copytree(work / "out", pred)
    folder = pred / "anomaly_p" / "energy" / "road-anomaly"
    files = sorted(folder.glob("*.hdf5"))
    files[0].unlink()
    proc = cli("evaluate", "--predictions", pred, "--method", "energy", "--dataset", "road-anomaly",
               "--data-root", synth_root, "-q", check=False)
    assert proc.returncode == 2
    assert f"1 of {len(files)} frames of road-anomaly have no prediction" in proc.stderr
    assert files[0].stem in proc.stderr
    files[1].write_bytes(b"garbage")
    shutil.copy(files[1], files[0])
    proc = cli("evaluate", "--predictions", pred, "--method", "energy", "--dataset", "road-anomaly",
               "--data-root", synth_root, "-q", check=False)
    assert proc.returncode == 2 and "corrupt or unreadable HDF5" in proc.stderr and files[0].name in proc.stderr


def test_leaderboard_command(energy_run, cli, tmp_path):
    work, _ = energy_run
    cli("leaderboard", "--results", work / "results", "--out", tmp_path / "lb.md")
    text = (tmp_path / "lb.md").read_text()
    for name in LABELLED:
        assert f"## {name} (SYNTHETIC DATA)" in text


def test_smiyc_submission(energy_run, synth_root, cli, tmp_path, segmenter_ckpt):
    work, _ = energy_run
    proc = cli("submit", "smiyc", "--predictions", work / "out", "--method", "energy", "--data-root", synth_root,
               "--out", tmp_path / "sub.zip", check=False)
    assert proc.returncode == 2 and "submission not written" in proc.stderr  # test splits not predicted yet
    assert not (tmp_path / "sub.zip").exists()
    cli("run", "--method", "energy", "--segmenter", "deeplabv3plus_small", "--checkpoint", segmenter_ckpt,
        "--dataset", "smiyc-anomaly-test", "smiyc-obstacle-test", "--data-root", synth_root, "--out", work / "out", "--results", tmp_path / "r", "-q")
    cli("submit", "smiyc", "--predictions", work / "out", "--method", "energy", "--data-root", synth_root,
        "--out", tmp_path / "sub.zip")
    names = zipfile.ZipFile(tmp_path / "sub.zip").namelist()
    assert any(n.startswith("anomaly_p/energy/AnomalyTrack-all/") for n in names)
    assert any(n.startswith("anomaly_p/energy/ObstacleTrack-all/") for n in names)
    assert any(n.startswith("anomaly_p/energy/LostAndFound-test/") for n in names)


def test_bad_names_list_the_valid_ones(synth_root, cli, tmp_path):
    proc = cli("run", "--method", "nope", "--dataset", "road-anomaly", "--data-root", synth_root, check=False)
    assert proc.returncode == 2 and "unknown method 'nope'; available:" in proc.stderr and "energy" in proc.stderr
    proc = cli("run", "--method", "energy", "--dataset", "nope", "--data-root", synth_root, check=False)
    assert proc.returncode == 2 and "unknown dataset 'nope'; available:" in proc.stderr
    proc = cli("run", "--method", "energy", "--dataset", "all", "--data-root", tmp_path, check=False)
    assert proc.returncode == 2 and "no labelled split found under" in proc.stderr
    proc = cli("run", "--method", "energy", "--dataset", "all", check=False, env={"OODBENCH_DATA": ""})
    assert proc.returncode == 2 and "no data root: pass --data-root DIR or set OODBENCH_DATA" in proc.stderr


# -- #12.4 untrained weights ---------------------------------------------------------------------------
def test_run_without_checkpoint_is_refused_and_writes_nothing(synth_root, cli, tmp_path):
    proc = cli("run", "--method", "energy", "--segmenter", "deeplabv3plus_small", "--dataset", "road-anomaly",
               "--data-root", synth_root, "--out", tmp_path / "out", "--results", tmp_path / "results", "-q",
               check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "--checkpoint" in proc.stderr
    assert "--allow-untrained" in proc.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "results").exists()


def test_allow_untrained_runs_and_marks_record_and_leaderboard(synth_root, cli, tmp_path):
    cli("run", "--method", "energy", "--segmenter", "deeplabv3plus_small", "--dataset", "road-anomaly",
        "--data-root", synth_root, "--out", tmp_path / "out", "--results", tmp_path / "results", "-q",
        "--allow-untrained")
    assert record(tmp_path / "results", "road-anomaly")["untrained"] is True
    text = cli("leaderboard", "--results", tmp_path / "results").stdout
    assert "| energy (untrained) |" in text and "(untrained): scored with random or unfitted weights" in text


# -- #12.5 protocols ----------------------------------------------------------------------------------
def test_evaluate_with_another_protocol_keeps_the_official_record(energy_run, synth_root, cli, tmp_path):
    import shutil

    work, _ = energy_run
    results = tmp_path / "results"
    shutil.copytree(work / "results", results)
    official = (results / "energy__smiyc-anomaly-val__smiyc.json").read_bytes()
    cli("evaluate", "--predictions", work / "out", "--method", "energy", "--dataset", "smiyc-anomaly-val",
        "--data-root", synth_root, "--protocol", "exact", "--fpr-rule", "nearest_recall", "--results", results, "-q")
    assert (results / "energy__smiyc-anomaly-val__smiyc.json").read_bytes() == official
    exact = json.loads((results / "energy__smiyc-anomaly-val__exact-nearest_recall.json").read_text())
    assert exact["protocol"] == "exact" and exact["fpr_rule"] == exact["metrics"]["fpr_rule"] == "nearest_recall"
    text = cli("leaderboard", "--results", results).stdout
    block = text.split("## smiyc-anomaly-val")[1].split("\n## ")[0]
    assert "### Protocol smiyc" in block and "### Protocol exact, FPR95 rule nearest_recall" in block


# -- #12.9 leaderboard input --------------------------------------------------------------------------
def test_leaderboard_refuses_bad_records_in_one_line(energy_run, cli, tmp_path):
    import shutil

    work, _ = energy_run
    results = tmp_path / "results"
    shutil.copytree(work / "results", results)
    path = results / "energy__road-anomaly__fishyscapes.json"
    rec = json.loads(path.read_text())
    rec["metrics"]["auprc"] = 99.5
    path.write_text(json.dumps(rec))
    proc = cli("leaderboard", "--results", results, check=False)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert path.name in proc.stderr and "'metrics.auprc'" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("leaderboard", "--results", tmp_path / "missing", check=False)
    assert proc.returncode == 2 and "missing" in proc.stderr and "(no results)" not in proc.stdout
