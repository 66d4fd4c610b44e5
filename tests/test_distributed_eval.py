"""torchrun-sharded `oodbench run` (2 CPU processes, gloo) equals the single-process run, metric by metric."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory) -> Path:
    from oodbench import segmenters

    torch.manual_seed(0)
    model = segmenters.build("deeplabv3plus_small")
    path = tmp_path_factory.mktemp("ckpt") / "small.pth"
    torch.save({"model_state": model.state_dict()}, path)
    return path


@pytest.mark.slow
def test_torchrun_two_processes_equal_one(synth_root, small_checkpoint, tmp_path, cli):
    common = ["--method", "energy", "--segmenter", "deeplabv3plus_small", "--checkpoint", str(small_checkpoint),
              "--dataset", "all", "--data-root", str(synth_root), "-q"]
    cli("run", *common, "--out", tmp_path / "one", "--results", tmp_path / "r1")
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "oodbench", "run", *common,
         "--out", str(tmp_path / "two"), "--results", str(tmp_path / "r2")],
        capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)  # not the checkout: its oodbench/ would shadow the install
    assert proc.returncode == 0, proc.stderr[-4000:]
    one = {p.name: json.loads(p.read_text()) for p in (tmp_path / "r1").iterdir()}
    two = {p.name: json.loads(p.read_text()) for p in (tmp_path / "r2").iterdir()}
    assert sorted(one) == sorted(two) and len(one) == 7
    compared = 0
    for name in one:
        a, b = one[name]["metrics"], two[name]["metrics"]
        assert sorted(a) == sorted(b), name
        for key in a:
            if isinstance(a[key], float) and a[key] != a[key]:  # NaN (e.g. no predicted component)
                assert b[key] != b[key], (name, key)
                continue
            assert b[key] == a[key], (name, key, a[key], b[key])
            compared += 1
        assert two[name]["data_fingerprint"] == one[name]["data_fingerprint"]
        assert two[name]["notes"]["run"]["world_size"] == 2
        assert two[name]["notes"]["run"]["predicted"] == one[name]["notes"]["run"]["predicted"]
    assert compared > 50
    # the sharded run predicted every frame exactly once into the shared store
    n1 = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.hdf5"))
    n2 = sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*.hdf5"))
    assert n1 == n2
