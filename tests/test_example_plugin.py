"""examples/oodbench-example-plugin installed into a fresh virtual environment and run through the CLI:
``oodbench fit`` then ``oodbench run`` reproduce scores computed here by hand."""
from __future__ import annotations

import json
import os
import site
import subprocess
import venv
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "oodbench-example-plugin"
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory) -> Path:
    """A new venv (system site-packages) that sees this interpreter's oodbench, with the example installed."""
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    # installed with the base interpreter's own packaging tools (setuptools + wheel)
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(EXAMPLE)],
                   check=True, capture_output=True, text=True, cwd=env_dir)
    # this process's site dirs (the oodbench under test, torch, pip) through addsitedir, so their .pth
    # files (editable finders) are honoured and come before the base interpreter's
    new_site = Path(subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   check=True, capture_output=True, text=True).stdout.strip())
    dirs = [d for d in (*site.getsitepackages(), site.getusersitepackages()) if os.path.isdir(d)]
    (new_site / "zz_oodbench_test.pth").write_text(
        "import site; " + "; ".join(f"site.addsitedir({d!r})" for d in dirs) + "\n")
    import oodbench

    where = subprocess.run([py, "-c", "import oodbench; print(oodbench.__file__)"], check=True,
                           capture_output=True, text=True, cwd=env_dir).stdout.strip()
    assert Path(where) == Path(oodbench.__file__), "the fresh venv must import the oodbench under test"
    return py


def cli(py: Path, *args, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(py), "-m", "oodbench", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    return proc


def normalised(rgb: np.ndarray) -> np.ndarray:
    return (rgb.astype(np.float64) / 255.0 - MEAN) / STD        # [H,W,3], the README's normalisation


def test_listed_with_its_distribution(fresh_python, tmp_path):
    records = json.loads(cli(fresh_python, "list", "methods", "--json", "-", cwd=tmp_path).stdout)
    mine = {r["name"]: r for r in records if r["distribution"] == "oodbench-example-plugin"}
    assert set(mine) == {"example-margin", "example-colour-gauss"}
    assert mine["example-colour-gauss"]["requires_fit"] is True and mine["example-margin"]["requires_fit"] is False


@pytest.mark.slow
def test_fit_then_run_reproduce_hand_computed_scores(fresh_python, synth_root, tmp_path):
    from oodbench.datasets import get_split
    from oodbench.datasets.cityscapes import CityscapesSegmentation
    from oodbench.store import PredictionStore

    state = tmp_path / "gauss.safetensors"
    cli(fresh_python, "fit", "--method", "example-colour-gauss", "--data-root", synth_root, "--max-images", "2",
        "--batch-size", "1", "--out", state, "-q", cwd=tmp_path)
    # the state by hand: per-channel mean / population variance over the first two training images
    train = CityscapesSegmentation(synth_root, "train")
    pix = np.concatenate([normalised(train[i][0]).reshape(-1, 3) for i in range(2)])
    mu, var = pix.mean(0), pix.var(0)

    out, results = tmp_path / "out", tmp_path / "results"
    proc = cli(fresh_python, "run", "--method", "example-colour-gauss", "--state", state, "--dataset", "road-anomaly",
               "--data-root", synth_root, "--out", out, "--results", results, "--json", "-", "-q", cwd=tmp_path)
    (record,) = json.loads(proc.stdout)
    assert record["plugin"]["distribution"] == "oodbench-example-plugin" and record["untrained"] is False
    import hashlib

    assert record["fitted_state_sha256"] == hashlib.sha256(state.read_bytes()).hexdigest()
    cli(fresh_python, "run", "--method", "example-margin", "--dataset", "road-anomaly", "--data-root", synth_root,
        "--out", out, "--results", results, "-q", cwd=tmp_path)

    split = get_split("road-anomaly", synth_root)
    fid = split.frame_ids()[0]
    x = normalised(split.load(fid).image)
    want_gauss = (((x - mu) ** 2) / var).sum(-1)
    top = np.sort(x, axis=-1)                                    # ColourLogits: logits = x
    want_margin = -(top[..., 2] - top[..., 1])
    for name, want in (("example-colour-gauss", want_gauss), ("example-margin", want_margin)):
        got = PredictionStore(out, name).read_anomaly(split.key, fid).astype(np.float64)
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3, err_msg=name)  # float16 storage


def test_unfitted_run_names_the_fit_command(fresh_python, synth_root, tmp_path):
    proc = subprocess.run([str(fresh_python), "-m", "oodbench", "run", "--method", "example-colour-gauss",
                           "--dataset", "road-anomaly", "--data-root", str(synth_root), "--out", str(tmp_path / "o"),
                           "--results", str(tmp_path / "r"), "-q"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "oodbench fit --method example-colour-gauss" in proc.stderr
