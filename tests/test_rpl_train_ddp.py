"""RPL+CoroCL training through torchrun (2 CPU ranks, gloo).

* equals one process with the same global batch. Why it can match: rank-contiguous batches,
  per-sample keyed augmentation, global masked means, globally sampled CoroCL pools and global-batch
  BN in the residual block (DistBatchNorm2d on CPU); dropout in the residual block is set to 0
  (``--residual-dropout 0``), since masks are drawn per rank;
* a run whose rank 0 is SIGKILLed mid-run and that is then resumed ends bit-identical to an
  uninterrupted run.

torchrun is launched as ``python -m torch.distributed.run`` (a venv may lack the ``torchrun``
script), with the working directory outside the checkout (see :func:`_run`).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from oodbench.training.logs import read_csv_log

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def rpl_data(rpl_synth):
    """(data root, COCO with OE masks, closed-set weights): conftest's ``rpl_synth``."""
    return rpl_synth


def _args(out: Path, data, batch: int) -> list[str]:
    root, coco, ckpt = data
    return ["--segmenter", "deeplabv3plus_small", "--checkpoint", str(ckpt), "--data-root", str(root),
            "--coco-root", str(coco), "--out-dir", str(out), "--crop-size", "64", "64", "--batch-size", str(batch),
            "--max-iters", "4", "--ckpt-every", "4", "--max-views", "48", "--residual-dropout", "0",
            "--num-workers", "0", "--no-progress", "--seed", "5"]


TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def _run(cmd: list[str], expect_ok: bool = True, **env_extra: str) -> subprocess.CompletedProcess:
    import tempfile

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **env_extra}
    # cwd outside the checkout: `python -m` puts the cwd first on sys.path, where the source folder
    # oodbench/ would shadow an installed wheel
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tempfile.gettempdir())
    if expect_ok:
        assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process(rpl_data, tmp_path):
    t0 = time.perf_counter()
    _run([str(BIN / "oodbench"), "train", "--method", "rpl", *_args(tmp_path / "one", rpl_data, 4)])
    t1 = time.perf_counter()
    _run([*TORCHRUN, "-m", "oodbench.methods.rpl.train", *_args(tmp_path / "two", rpl_data, 2)])
    t2 = time.perf_counter()
    one = read_csv_log(tmp_path / "one" / "train.csv")
    two = read_csv_log(tmp_path / "two" / "train.csv")
    assert len(one) == len(two) == 4
    assert any(r["corocl_active"] == "1" for r in one)
    for a, b in zip(one, two):
        assert a["ood_images"] == b["ood_images"] and a["corocl_active"] == b["corocl_active"]
        # iteration 1 agrees to ~1e-10; Adam's normalised step then amplifies float noise in
        # near-zero gradient components, so later terms drift to a few 1e-6 of the total loss
        scale = abs(float(a["total"]))
        for key in ("ce", "reg", "energy", "corocl", "total"):
            x, y = float(a[key]), float(b[key])
            assert abs(x - y) <= 1e-5 * scale, (a["iteration"], key, x, y)
    wa = torch.load(tmp_path / "one" / "last.pth", weights_only=True)["model"]
    wb = torch.load(tmp_path / "two" / "last.pth", weights_only=True)["model"]
    # Adam moves every element by about lr per step whatever the gradient's size, so components whose
    # gradient is float noise may step the other way (|diff| <= 2 x 4 steps x 10 x 7.5e-5); such
    # components must stay rare, everything else agrees to float precision
    diffs = torch.cat([(v - wb[k]).abs().flatten() for k, v in wa.items() if v.is_floating_point()])
    assert float(diffs.max()) <= 2 * 4 * 10 * 7.5e-5
    assert float((diffs > 1e-5).float().mean()) < 0.01
    # end-of-run validation on the labelled synthetic splits (rank 0 only under torchrun)
    va, vb = read_csv_log(tmp_path / "one" / "val.csv"), read_csv_log(tmp_path / "two" / "val.csv")
    assert len(va) == len(vb) == 1 and set(va[0]) == set(vb[0]) and any(k.endswith("/auprc") for k in va[0])
    for k in va[0]:
        assert float(va[0][k]) == pytest.approx(float(vb[0][k]), abs=1e-3), k
    print(f"1 process: {t1 - t0:.1f} s, torchrun x2: {t2 - t1:.1f} s")


# rank 0 SIGKILLs itself when it starts step KILL_AT (0-based): the checkpoint of the last
# multiple of --ckpt-every is on disk, the steps after it are lost, rank 1 is blocked in a
# collective until the torchrun agent tears it down. Everything else is the real entry point.
KILL_SCRIPT = """
import os, signal, sys
from oodbench.methods.rpl import train as T
kill_at = int(os.environ["OODBENCH_TEST_KILL_AT"])
step = T.RPLTrainer.train_step
def train_step(self, batch, iteration):
    if iteration == kill_at and self.ctx.rank == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    return step(self, batch, iteration)
T.RPLTrainer.train_step = train_step
sys.exit(T.main())
"""


@pytest.mark.slow
def test_sigkilled_torchrun_run_resumes_to_bit_identical_weights(rpl_data, tmp_path):
    def args(out: Path) -> list[str]:
        a = _args(out, rpl_data, 2)
        for flag, value in (("--max-iters", "5"), ("--ckpt-every", "2"), ("--crop-size", "32")):
            a[a.index(flag) + 1] = value
        a[a.index("--crop-size") + 2] = "32"
        return [*a, "--val-splits", "none"]

    t0 = time.perf_counter()
    _run([*TORCHRUN, "-m", "oodbench.methods.rpl.train", *args(tmp_path / "full")])
    t1 = time.perf_counter()
    script = tmp_path / "kill_rank0.py"
    script.write_text(KILL_SCRIPT)
    # steps 0-2 done, the checkpoint of iteration 2 on disk, step 2 lost
    killed = _run([*TORCHRUN, str(script), *args(tmp_path / "res")], expect_ok=False, OODBENCH_TEST_KILL_AT="3")
    t2 = time.perf_counter()
    assert killed.returncode != 0
    assert "Signals.SIGKILL" in killed.stderr or f"exitcode  : -{int(signal.SIGKILL)}" in killed.stderr, killed.stderr[-3000:]
    out = tmp_path / "res"
    assert torch.load(out / "last.pth", weights_only=True)["iteration"] == 2
    assert [r["iteration"] for r in read_csv_log(out / "train.csv")][-1] in ("2", "3")  # step 3's row may be lost
    resumed = _run([*TORCHRUN, "-m", "oodbench.methods.rpl.train", *args(out)])
    assert f"resuming from {out / 'last.pth'} at iteration 2" in resumed.stderr, resumed.stderr[-3000:]
    t3 = time.perf_counter()
    a = torch.load(tmp_path / "full" / "last.pth", weights_only=True)
    b = torch.load(out / "last.pth", weights_only=True)
    assert a["iteration"] == b["iteration"] == 5
    assert a["model"].keys() == b["model"].keys()
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    for i, st in a["optimizer"]["state"].items():  # Adam moments and step counts too
        for name, v in st.items():
            assert torch.equal(v, b["optimizer"]["state"][i][name]), (i, name)
    cols = ("iteration", "ce", "reg", "energy", "corocl", "total", "lr")
    rows = [[tuple(r[c] for c in cols) for r in read_csv_log(d / "train.csv")] for d in (tmp_path / "full", out)]
    assert rows[0] == rows[1] and len(rows[0]) == 5
    assert not list(out.glob(".tmp-*"))
    print(f"uninterrupted {t1 - t0:.1f} s, killed {t2 - t1:.1f} s, resumed {t3 - t2:.1f} s")
