"""A third-party method package, installed into a separate site dir, found through its entry point."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest


PLUGIN_SRC = '''
"""A tiny third-party oodbench method: darkness of the image is the anomaly score."""
import torch
from oodbench.methods import Method


class Darkness(Method):
    name = "darkness"
    paper = "plugin test"

    def predict(self, x):
        anomaly = -x.mean(dim=1)
        logits = torch.zeros(x.shape[0], 19, *x.shape[2:], device=x.device)
        return anomaly, logits
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    pkg = tmp_path_factory.mktemp("plugin_pkg")
    (pkg / "oodbench_darkness").mkdir()
    (pkg / "oodbench_darkness" / "__init__.py").write_text(PLUGIN_SRC)
    (pkg / "pyproject.toml").write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools>=64"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "oodbench-darkness"
        version = "0.3.1"
        [project.entry-points."oodbench.methods"]
        darkness = "oodbench_darkness:Darkness"
        [tool.setuptools]
        packages = ["oodbench_darkness"]
    '''))
    site = tmp_path_factory.mktemp("site")
    # this interpreter's packaging tools first; a venv whose setuptools lacks ``wheel`` (bdist_wheel)
    # falls back to the base interpreter's (the package is pure Python: any 3.x builds it alike)
    for python in dict.fromkeys([sys.executable, getattr(sys, "_base_executable", sys.executable)]):
        proc = subprocess.run(
            [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
             "--target", str(site), str(pkg)],
            capture_output=True, text=True,
        )
        if proc.returncode == 0:
            return site
    raise AssertionError(f"pip could not install the test plugin:\n{proc.stderr}")


def test_plugin_is_listed_with_its_distribution(plugin_site, cli):
    out = cli("list", "methods", env={"PYTHONPATH": str(plugin_site)}).stdout
    line = next(l for l in out.splitlines() if l.startswith("darkness"))
    assert "oodbench-darkness 0.3.1" in line


def test_autoload_opt_out(plugin_site, cli):
    out = cli("list", "methods", env={"PYTHONPATH": str(plugin_site),
                                          "OODBENCH_DISABLE_PLUGIN_AUTOLOAD": "1"}).stdout
    assert "darkness" not in out and "energy" in out


def test_plugin_runs_through_the_cli_and_records_provenance(plugin_site, synth_root, tmp_path, cli):
    results = tmp_path / "results"
    cli("run", "--method", "darkness", "--dataset", "road-anomaly", "--data-root", synth_root,
            "--out", tmp_path / "out", "--results", results, "-q",
            env={"PYTHONPATH": str(plugin_site)})
    record = json.loads((results / "darkness__road-anomaly__fishyscapes.json").read_text())
    assert record["plugin"] == {"distribution": "oodbench-darkness", "version": "0.3.1"}
    assert record["metrics"]["auprc"] == pytest.approx(_darkness_auprc(synth_root), abs=1e-9)
    assert record["untrained"] is False  # a method without requires_fit needs no --checkpoint


def _darkness_auprc(root) -> float:
    """The plugin's pooled AuPRC computed here: score = -(channel mean of the ImageNet-normalised
    image), Fishyscapes protocol = sklearn's average precision over all pixels labelled 0 or 1
    (docs/benchmarks.md §2.2)."""
    import numpy as np
    import torch
    from sklearn.metrics import average_precision_score

    from oodbench.datasets import get_split

    mean = torch.tensor((0.485, 0.456, 0.406)).view(3, 1, 1)   # ImageNet statistics, the runner's default
    std = torch.tensor((0.229, 0.224, 0.225)).view(3, 1, 1)
    split = get_split("road-anomaly", root)
    ys, ss = [], []
    for fid in split.frame_ids():
        frame = split.load(fid)
        x = (torch.from_numpy(frame.image).permute(2, 0, 1).float() / 255.0 - mean) / std
        valid = frame.label != 255
        ys.append(frame.label[valid] == 1)
        ss.append((-x.mean(dim=0)).numpy()[valid])
    return float(average_precision_score(np.concatenate(ys), np.concatenate(ss)))
