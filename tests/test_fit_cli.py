"""``oodbench fit`` / ``run --state`` / ``run --name`` through the console script, and the script-facing
errors and output of #14.5 (one line, exit code 2, never a traceback)."""
from __future__ import annotations

import json
import os
import subprocess

import pytest
from _helpers import one_line_error


@pytest.fixture(scope="module")
def ckpt(segmenter_ckpt):
    """The seeded small-segmenter weights of conftest."""
    return segmenter_ckpt


SEG = ("--segmenter", "deeplabv3plus_small")


@pytest.mark.slow
def test_changed_fitted_state_is_never_reused(synth_root, ckpt, tmp_path, cli):
    import hashlib

    states = []
    for n in (1, 2):
        state = tmp_path / f"sml{n}.safetensors"
        cli("fit", "--method", "sml", *SEG, "--checkpoint", ckpt, "--data-root", synth_root, "--max-images", n,
            "--out", state, "-q")
        states.append(state)
    common = ("run", "--method", "sml", *SEG, "--checkpoint", ckpt, "--dataset", "road-anomaly",
              "--data-root", synth_root, "--out", tmp_path / "out", "--results", tmp_path / "res", "-q",
              "--json", "-")
    (first,) = json.loads(cli(*common, "--state", states[0]).stdout)
    assert first["fitted_state_sha256"] == hashlib.sha256(states[0].read_bytes()).hexdigest()
    # same hparams, another state: the stored predictions are refused, not reused
    proc = cli(*common, "--state", states[1], check=False)
    one_line_error(proc, "different configuration")
    (second,) = json.loads(cli(*common, "--state", states[1], "--overwrite").stdout)
    assert second["hparams"] == first["hparams"]
    assert second["fitted_state_sha256"] != first["fitted_state_sha256"]
    assert second["notes"]["run"]["predicted"] == second["num_frames"]  # all recomputed


def test_unfitted_method_is_refused_naming_the_fit_command(synth_root, ckpt, tmp_path, cli):
    proc = cli("run", "--method", "sml", *SEG, "--checkpoint", ckpt, "--dataset", "road-anomaly",
               "--data-root", synth_root, "--out", tmp_path / "o", "--results", tmp_path / "r", "-q", check=False)
    one_line_error(proc, "oodbench fit --method sml")
    assert not (tmp_path / "r").exists()


def test_fit_refuses_a_training_free_method(synth_root, ckpt, tmp_path, cli):
    proc = cli("fit", "--method", "energy", *SEG, "--checkpoint", ckpt, "--data-root", synth_root,
               "--out", tmp_path / "e.safetensors", check=False)
    one_line_error(proc, "nothing to fit")


def test_run_names_keep_two_configurations(synth_root, ckpt, tmp_path, cli):
    common = ("run", "--method", "energy", *SEG, "--checkpoint", ckpt, "--dataset", "road-anomaly",
              "--data-root", synth_root, "--out", tmp_path / "out", "--results", tmp_path / "res", "-q")
    cli(*common)
    (named,) = json.loads(cli(*common, "--name", "energy-T2", "--param", "temperature=2", "--json", "-").stdout)
    assert named["method"] == "energy" and named["name"] == "energy-T2" and named["hparams"]["temperature"] == 2.0
    files = sorted(p.name for p in (tmp_path / "res").glob("*.json"))
    assert files == ["energy-T2__road-anomaly__fishyscapes.json", "energy__road-anomaly__fishyscapes.json"]
    plain = json.loads((tmp_path / "res" / files[1]).read_text())
    assert plain["name"] == "" and plain["hparams"]["temperature"] == 1.0
    assert (tmp_path / "out" / "anomaly_p" / "energy-T2").is_dir()
    board = cli("leaderboard", "--results", tmp_path / "res").stdout
    assert "| energy-T2 " in board and "| energy " in board
    # evaluate of the named store keeps both as well
    (ev,) = json.loads(cli("evaluate", "--predictions", tmp_path / "out", "--method", "energy-T2", "--dataset",
                           "road-anomaly", "--data-root", synth_root, "--json", "-", "-q").stdout)
    assert ev["method"] == "energy" and ev["name"] == "energy-T2" and ev["metrics"] == named["metrics"]


# -- #14.5: one test per error ----------------------------------------------------------------
def test_wrong_param_names_the_parameters(synth_root, ckpt, tmp_path, cli):
    proc = cli("run", "--method", "energy", *SEG, "--checkpoint", ckpt, "--param", "temprature=2", "--dataset",
               "road-anomaly", "--data-root", synth_root, "--out", tmp_path / "o", check=False)
    one_line_error(proc, "'temprature'", "temperature, segmenter, checkpoint")


def test_missing_checkpoint(synth_root, tmp_path, cli):
    proc = cli("run", "--method", "energy", *SEG, "--checkpoint", tmp_path / "nope.pth", "--dataset",
               "road-anomaly", "--data-root", synth_root, "--out", tmp_path / "o", check=False)
    one_line_error(proc, "--checkpoint", "nope.pth", "no such file")


def test_mismatched_checkpoint(synth_root, tmp_path, cli):
    import torch

    bad = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(2, 2)}, bad)
    proc = cli("run", "--method", "energy", *SEG, "--checkpoint", bad, "--dataset", "road-anomaly",
               "--data-root", synth_root, "--out", tmp_path / "o", check=False)
    one_line_error(proc, "--method energy", "other.pth")


def test_unavailable_device(synth_root, ckpt, tmp_path, cli):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    proc = cli("run", "--method", "energy", *SEG, "--checkpoint", ckpt, "--device", "cuda", "--dataset",
               "road-anomaly", "--data-root", synth_root, "--out", tmp_path / "o", check=False)
    one_line_error(proc, "--device cuda", "no CUDA device")


def test_failing_plugin_constructor(synth_root, tmp_path, cli):
    site = tmp_path / "site"
    (site / "broken_plugin-1.0.dist-info").mkdir(parents=True)
    (site / "broken_plugin-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (site / "broken_plugin-1.0.dist-info" / "entry_points.txt").write_text("[oodbench.methods]\nbroken = broken_plugin:Broken\n")
    (site / "broken_plugin.py").write_text(
        "from oodbench.methods import Method\n"
        "class Broken(Method):\n"
        "    name = 'broken'\n"
        "    def __init__(self):\n"
        "        raise RuntimeError('cannot open the model file\\nsecond line')\n"
        "    def predict(self, x):\n"
        "        raise NotImplementedError\n")
    proc = cli("run", "--method", "broken", "--dataset", "road-anomaly", "--data-root", synth_root,
               "--out", tmp_path / "o", env={"PYTHONPATH": str(site)}, check=False)
    one_line_error(proc, "--method broken", "RuntimeError: cannot open the model file")


def test_json_is_always_a_list_of_records(tmp_path, cli):
    records = json.loads(cli("list", "methods", "--json", "-").stdout)
    assert isinstance(records, list) and {"sml", "mahalanobis", "energy"} <= {r["name"] for r in records}
    cli("list", "segmenters", "--json", tmp_path / "s.json")
    assert isinstance(json.loads((tmp_path / "s.json").read_text()), list)


def test_progress_only_on_a_terminal_unless_forced(synth_root, ckpt, tmp_path, cli):
    common = ("run", "--method", "energy", *SEG, "--checkpoint", ckpt, "--dataset", "road-anomaly",
              "--data-root", synth_root, "--results", tmp_path / "r")
    quiet = cli(*common, "--out", tmp_path / "a").stderr  # stderr is a pipe here
    assert "frame/s" not in quiet and "frame]" not in quiet
    forced = cli(*common, "--out", tmp_path / "b", "--progress").stderr
    assert "road-anomaly" in forced and "frame" in forced


def test_broken_pipe_exits_quietly():
    r, w = os.pipe()
    os.close(r)  # the reader is gone before the first write
    import shutil
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / "oodbench"
    proc = subprocess.run([str(exe) if exe.exists() else shutil.which("oodbench"), "list", "methods"], stdout=w, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    os.close(w)
    assert proc.stderr == "" and proc.returncode == 141


def test_leaderboard_on_a_missing_folder(tmp_path, cli):
    proc = cli("leaderboard", "--results", tmp_path / "nothing", check=False)
    one_line_error(proc, "--results", "nothing", "no such folder")


def test_help_lists_the_environment_variables(cli):
    out = cli("--help").stdout
    assert "OODBENCH_DATA" in out and "OODBENCH_DISABLE_PLUGIN_AUTOLOAD" in out
