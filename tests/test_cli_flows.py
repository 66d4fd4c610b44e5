"""The CLI flows a user runs, end to end through the real console script, on the synthetic benchmark."""
from __future__ import annotations

import json
import zipfile

import pytest

LABELLED = ["fishyscapes-laf-val", "fishyscapes-static-val", "road-anomaly", "smiyc-anomaly-val",
            "smiyc-laf-noknown", "smiyc-obstacle-val", "streethazards-test"]


@pytest.fixture(scope="module")
def energy_run(synth_root, tmp_path_factory, cli):
    work = tmp_path_factory.mktemp("energy_run")
    proc = cli("run", "--method", "energy", "--segmenter", "deeplabv3plus_small", "--dataset", "all",
               "--data-root", synth_root, "--out", work / "out", "--results", work / "results", "-q")
    return work, proc


def test_list_datasets_finds_every_synthetic_split(synth_root, cli):
    out = cli("list", "datasets", "--data-root", synth_root).stdout
    for name in LABELLED + ["smiyc-anomaly-test", "smiyc-obstacle-test"]:
        line = next(l for l in out.splitlines() if l.startswith(name))
        assert line.rstrip().endswith("found"), line


def test_run_all_writes_records_and_prints_marked_tables(energy_run):
    work, proc = energy_run
    records = sorted(p.name for p in (work / "results").iterdir())
    assert records == sorted(f"energy__{n}.json" for n in LABELLED)
    assert "SYNTHETIC DATA" in proc.stdout and "## road-anomaly" in proc.stdout
    rec = json.loads((work / "results" / "energy__smiyc-anomaly-val.json").read_text())
    assert rec["protocol"] == "smiyc" and rec["synthetic"] is True
    assert {"auprc", "fpr95", "best_f1", "best_f1_threshold", "siou", "ppv", "f1_mean"} <= set(rec["metrics"])
    assert rec["hparams"] == {"segmenter": "deeplabv3plus_small", "temperature": 1.0}
    assert rec["oodbench_version"] and rec["data_fingerprint"] and rec["plugin"]["distribution"] == "oodbench"
    sh = json.loads((work / "results" / "energy__streethazards-test.json").read_text())
    assert sh["protocol"] == "streethazards" and {"open_miou", "closed_miou"} <= set(sh["metrics"])
    # SMIYC predictions are stored as float16 under the persistence name
    assert (work / "out" / "anomaly_p" / "energy" / "AnomalyTrack-all").is_dir()


def test_rerun_skips_stored_frames(energy_run, synth_root, cli):
    work, _ = energy_run
    cli("run", "--method", "energy", "--segmenter", "deeplabv3plus_small", "--dataset", "road-anomaly",
        "--data-root", synth_root, "--out", work / "out", "--results", work / "results2", "-q")
    rec = json.loads((work / "results2" / "energy__road-anomaly.json").read_text())
    assert rec["notes"]["run"]["predicted"] == 0 and rec["notes"]["run"]["skipped"] == rec["num_frames"]
    first = json.loads((work / "results" / "energy__road-anomaly.json").read_text())
    assert rec["metrics"] == first["metrics"]


def test_rerun_with_other_hparams_is_refused(energy_run, synth_root, cli):
    work, _ = energy_run
    proc = cli("run", "--method", "energy", "--param", "temperature=2", "--segmenter", "deeplabv3plus_small",
               "--dataset", "road-anomaly", "--data-root", synth_root, "--out", work / "out",
               "--results", work / "results3", "-q", check=False)
    assert proc.returncode == 2 and "holds predictions of a different configuration" in proc.stderr


def test_evaluate_stored_predictions_without_a_model(energy_run, synth_root, cli, tmp_path):
    work, _ = energy_run
    cli("evaluate", "--predictions", work / "out", "--method", "energy", "--dataset", "road-anomaly",
        "--data-root", synth_root, "--json", tmp_path / "m.json", "-q")
    got = json.loads((tmp_path / "m.json").read_text())
    assert got["dataset"] == "road-anomaly" and got["method"] == "energy" and got["protocol"] == "fishyscapes"
    run = json.loads((work / "results" / "energy__road-anomaly.json").read_text())
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


def test_smiyc_submission(energy_run, synth_root, cli, tmp_path):
    work, _ = energy_run
    proc = cli("submit", "smiyc", "--predictions", work / "out", "--method", "energy", "--data-root", synth_root,
               "--out", tmp_path / "sub.zip", check=False)
    assert proc.returncode == 2 and "submission not written" in proc.stderr  # test splits not predicted yet
    assert not (tmp_path / "sub.zip").exists()
    cli("run", "--method", "energy", "--segmenter", "deeplabv3plus_small", "--dataset", "smiyc-anomaly-test",
        "smiyc-obstacle-test", "--data-root", synth_root, "--out", work / "out", "--results", tmp_path / "r", "-q")
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
