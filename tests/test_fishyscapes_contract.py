"""The Fishyscapes container contract, run through the real console script without Apptainer."""
from __future__ import annotations

import json

import numpy as np
import pytest
from _helpers import one_line_error
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
    cli("fishyscapes-predict", "--method", "energy", "--segmenter", "deeplabv3plus_small", "--allow-untrained",
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
               "--allow-untrained", "--input", tmp_path / "input", "--output", tmp_path / "output", "-q",
               check=False)
    assert proc.returncode == 2
    assert "0000_x.png: unreadable input image" in proc.stderr


SEG = ("--segmenter", "deeplabv3plus_small")


def test_predict_refuses_untrained_weights_before_writing(tmp_path, cli):
    # random segmenter weights would be scored by the organisers' server as if they were a method
    _inputs(tmp_path / "input", ["0000"], shape=(32, 64))
    proc = cli("fishyscapes-predict", "--method", "energy", *SEG, "--input", tmp_path / "input",
               "--output", tmp_path / "output", "-q", check=False)
    one_line_error(proc, "energy:", "--allow-untrained")
    assert not (tmp_path / "output").exists()


@pytest.fixture(scope="module")
def sml_state(synth_root, segmenter_ckpt, tmp_path_factory, cli):
    """An SML state fitted (``oodbench fit``) on one synthetic training image."""
    state = tmp_path_factory.mktemp("state") / "sml.safetensors"
    cli("fit", "--method", "sml", *SEG, "--checkpoint", segmenter_ckpt, "--data-root", synth_root,
            "--max-images", 1, "--out", state, "-q")
    return state


def test_predict_loads_a_fitted_state_and_refuses_without_one(tmp_path, cli, segmenter_ckpt, sml_state):
    _inputs(tmp_path / "input", ["0000", "0001"], shape=(32, 64))
    common = ("fishyscapes-predict", "--method", "sml", *SEG, "--checkpoint", segmenter_ckpt,
              "--input", tmp_path / "input", "-q")
    proc = cli(*common, "--output", tmp_path / "unfitted", check=False)
    one_line_error(proc, "oodbench fit --method sml")
    assert not (tmp_path / "unfitted").exists()
    # a state fitted on other segmenter weights is refused as `run --state` refuses it
    proc = cli("fishyscapes-predict", "--method", "sml", *SEG, "--input", tmp_path / "input", "-q",
               "--state", sml_state, "--allow-untrained", "--output", tmp_path / "other", check=False)
    one_line_error(proc, "segmenter checkpoint sha256")
    cli(*common, "--state", sml_state, "--output", tmp_path / "output")
    check_outputs(tmp_path / "output", ["0000", "0001"], expected_shape=None)
    assert np.load(tmp_path / "output" / "0000_anomaly.npy").shape == (32, 64)


def test_export_builds_the_fitted_state_into_the_image(tmp_path, cli, segmenter_ckpt, sml_state):
    proc = cli("fishyscapes-export", "--method", "sml", *SEG, "--checkpoint", segmenter_ckpt,
               "--out", tmp_path / "nostate", check=False)
    one_line_error(proc, "must be fitted", "oodbench fit --method sml")
    assert not (tmp_path / "nostate").exists()
    proc = cli("fishyscapes-export", "--method", "mahalanobis", *SEG, "--checkpoint", segmenter_ckpt,
               "--state", sml_state, "--out", tmp_path / "wrong", check=False)
    one_line_error(proc, "fitted for method 'sml', not 'mahalanobis'")
    cli("fishyscapes-export", "--method", "sml", *SEG, "--checkpoint", segmenter_ckpt, "--state", sml_state,
        "--out", tmp_path / "export")
    definition = (tmp_path / "export" / "oodbench.def").read_text()
    assert "sml.safetensors /opt/oodbench/sml.safetensors" in definition
    assert (tmp_path / "export" / "sml.safetensors").read_bytes() == sml_state.read_bytes()
    runscript = (tmp_path / "export" / "runscript.sh").read_text()
    assert ("--checkpoint /opt/oodbench/segmenter.pth --state /opt/oodbench/sml.safetensors "
            "--input /input --output /output") in runscript


def test_export_writes_definition_runscript_and_validation_entry(tmp_path, cli, segmenter_ckpt):
    from oodbench.results import Result, save_result

    save_result(Result(method="energy", dataset="fishyscapes-laf-val", benchmark="Fishyscapes L&F",
                       protocol="fishyscapes", protocol_version="v", metrics={"auprc": 0.61, "fpr95": 0.04},
                       num_frames=100), tmp_path / "results")
    cli("fishyscapes-export", "--method", "energy", *SEG, "--checkpoint", segmenter_ckpt, "--param",
        "temperature=2", "--out", tmp_path / "export", "--results", tmp_path / "results")
    definition = (tmp_path / "export" / "oodbench.def").read_text()
    assert "%runscript" in definition and "segmenter.pth /opt/oodbench/segmenter.pth" in definition
    assert (tmp_path / "export" / "segmenter.pth").read_bytes() == segmenter_ckpt.read_bytes()
    runscript = (tmp_path / "export" / "runscript.sh").read_text()
    assert ("oodbench fishyscapes-predict --method energy --segmenter deeplabv3plus_small --param temperature=2 "
            "--checkpoint /opt/oodbench/segmenter.pth --input /input --output /output") in runscript
    assert json.loads((tmp_path / "export" / "validation_performance.json").read_text()) == {
        "energy": {"lostandfound": {"ap": 0.61, "fpr": 0.04}}}


def test_export_refuses_what_the_container_would_refuse(tmp_path, cli):
    # checked by building the method locally: nothing is written for the server to fail on
    fake = tmp_path / "rpl.pth"
    fake.write_bytes(b"weights")
    proc = cli("fishyscapes-export", "--method", "rpl", "--checkpoint", fake, "--out", tmp_path / "a", check=False)
    one_line_error(proc, "--method rpl: could not build it")
    proc = cli("fishyscapes-export", "--method", "energy", *SEG, "--out", tmp_path / "b", check=False)
    one_line_error(proc, "energy:", "--allow-untrained")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
