"""The Fishyscapes container contract, run through the real console script without Apptainer."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from oodbench.fishyscapes_submission import ContainerContractError, check_outputs, list_inputs


def _inputs(folder, prefixes, shape=(1024, 2048)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for p in prefixes:
        Image.fromarray(rng.integers(0, 255, (*shape, 3), dtype=np.uint8)).save(
            folder / f"{p}_04_Maurener_Weg_8_000000_000030_rgb.png")


def test_inputs_sorted_by_integer_prefix(tmp_path):
    _inputs(tmp_path, ["0010", "0002", "0001"], shape=(4, 8))
    (tmp_path / "notes.txt").write_text("ignored")
    assert [d for d, _ in list_inputs(tmp_path)] == ["0001", "0002", "0010"]


@pytest.mark.slow
def test_predict_writes_one_pair_per_input_at_full_resolution(tmp_path, cli):
    _inputs(tmp_path / "input", ["0000", "0001", "0007"])
    cli("fishyscapes-predict", "--method", "energy", "--segmenter", "deeplabv3plus_small",
        "--input", tmp_path / "input", "--output", tmp_path / "output", "-q")
    names = sorted(p.name for p in (tmp_path / "output").iterdir())
    assert names == [f"{d}_{s}.npy" for d in ("0000", "0001", "0007") for s in ("anomaly", "segmentation")]
    check_outputs(tmp_path / "output", ["0000", "0001", "0007"])  # official CI checks
    seg = np.load(tmp_path / "output" / "0001_segmentation.npy")
    assert seg.shape == (1024, 2048) and seg.min() >= 0 and seg.max() < 20
    assert np.load(tmp_path / "output" / "0001_anomaly.npy").dtype == np.float32


def test_check_outputs_catches_missing_and_bad_files(tmp_path):
    np.save(tmp_path / "0000_anomaly.npy", np.zeros((1024, 2048), np.float32))
    np.save(tmp_path / "0000_segmentation.npy", np.full((1024, 2048), 20, np.uint8))
    np.save(tmp_path / "0001_anomaly.npy", np.zeros((1024, 1024), np.float32))
    with pytest.raises(ContainerContractError) as err:
        check_outputs(tmp_path, ["0000", "0001"])
    msg = str(err.value)
    assert "0000_segmentation.npy: classes outside [0, 20)" in msg
    assert "0001_anomaly.npy: shape (1024, 1024) != (1024, 2048)" in msg
    assert "missing 0001_segmentation.npy" in msg


def test_unreadable_input_stops_the_run(tmp_path, cli):
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "0000_x.png").write_bytes(b"not a png")
    proc = cli("fishyscapes-predict", "--method", "energy", "--segmenter", "deeplabv3plus_small",
               "--input", tmp_path / "input", "--output", tmp_path / "output", "-q", check=False)
    assert proc.returncode == 2
    assert "0000_x.png: unreadable input image" in proc.stderr


def test_export_writes_definition_runscript_and_validation_entry(tmp_path, cli):
    from oodbench.results import Result, save_result

    save_result(Result(method="rpl", dataset="fishyscapes-laf-val", benchmark="Fishyscapes L&F",
                       protocol="fishyscapes", protocol_version="v", metrics={"auprc": 0.61, "fpr95": 0.04},
                       num_frames=100), tmp_path / "results")
    ckpt = tmp_path / "rpl.pth"
    ckpt.write_bytes(b"weights")
    cli("fishyscapes-export", "--method", "rpl", "--checkpoint", ckpt, "--out", tmp_path / "export",
        "--results", tmp_path / "results")
    definition = (tmp_path / "export" / "oodbench.def").read_text()
    assert "%runscript" in definition and "rpl.pth /opt/oodbench/rpl.pth" in definition
    runscript = (tmp_path / "export" / "runscript.sh").read_text()
    assert "oodbench fishyscapes-predict --method rpl --checkpoint /opt/oodbench/rpl.pth --input /input --output /output" in runscript
    assert json.loads((tmp_path / "export" / "validation_performance.json").read_text()) == {
        "rpl": {"lostandfound": {"ap": 0.61, "fpr": 0.04}}}
