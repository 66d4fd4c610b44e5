"""Issue #12 items 2, 3, 10, 11: no wrong number may look right.

The kill sequences use a REAL ``SIGKILL`` on the real console script. A tiny method plugin (written
below as an installed distribution with an entry point) makes the kill point deterministic: when
``OODBENCH_TEST_GATE_WRITES=N`` is set, it lets exactly ``N`` store writes (score maps and semantic
maps together) complete, then blocks every further write and creates ``$OODBENCH_TEST_GATE_DIR/blocked``;
the test waits for that file and kills the process. No timing luck is involved.
"""
from __future__ import annotations

import errno
import json
import os
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from oodbench import atomic
from oodbench.atomic import atomic_write_json
from oodbench.contracts import ContractError
from oodbench.store import PredictionStore

CONFIG_ATTR = "oodbench_config"  # oodbench.store.CONFIG_ATTR (spelled out: the tests predate it)
LONG_AGO = time.time() - 86400   # before any process of this test session started

PLUGIN_SRC = '''
"""oodbench test plugin: a method whose scores depend on its checkpoint, and a write gate."""
import hashlib
import os
import pathlib
import threading
import time

import torch

from oodbench.methods import Method


class Toy(Method):
    """anomaly = w . RGB (w read from the checkpoint, a text file "w0 w1 w2"); 12-class logits."""

    name = "toy"
    paper = "oodbench test plugin"

    def __init__(self, checkpoint=None):
        super().__init__()
        data = pathlib.Path(checkpoint).read_bytes() if checkpoint else b"1 0 0"
        self._sha = hashlib.sha256(data).hexdigest()
        self.w = [float(v) for v in data.split()]

    @property
    def checkpoint_sha256(self):
        return self._sha

    def predict(self, x):
        anomaly = self.w[0] * x[:, 0] + self.w[1] * x[:, 1] + self.w[2] * x[:, 2]
        logits = torch.stack([x[:, c % 3] * (c - 5.5) * self.w[c % 3] for c in range(12)], dim=1)
        return anomaly, logits


def _install_gate(budget, folder):
    from oodbench.store import PredictionStore

    lock = threading.Lock()
    done = [0]

    def gated(fn):
        def wrapper(self, key, frame_id, *args, **kwargs):
            with lock:
                if done[0] >= budget:  # block every later write, holding the lock
                    (folder / "blocked").write_text(str(done[0]))
                    while True:
                        time.sleep(60)
                out = fn(self, key, frame_id, *args, **kwargs)
                done[0] += 1
                return out
        return wrapper

    PredictionStore.write_anomaly = gated(PredictionStore.write_anomaly)
    PredictionStore.write_semantic = gated(PredictionStore.write_semantic)


if os.environ.get("OODBENCH_TEST_GATE_WRITES"):
    _install_gate(int(os.environ["OODBENCH_TEST_GATE_WRITES"]), pathlib.Path(os.environ["OODBENCH_TEST_GATE_DIR"]))
'''


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A site folder holding the ``toy`` plugin distribution, and checkpoints A and B."""
    site = tmp_path_factory.mktemp("toy_site")
    (site / "oodbench_toy").mkdir()
    (site / "oodbench_toy" / "__init__.py").write_text(PLUGIN_SRC)
    info = site / "oodbench_toy-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: oodbench-toy\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[oodbench.methods]\ntoy = oodbench_toy:Toy\n")
    ckpt_a, ckpt_b = site / "A.txt", site / "B.txt"
    ckpt_a.write_text("1.0 0.2 -0.5")
    ckpt_b.write_text("-0.3 1.0 0.7")
    return {"env": {"PYTHONPATH": str(site)}, "A": ckpt_a, "B": ckpt_b}


def console_script() -> str:
    exe = Path(sys.executable).parent / "oodbench"
    return str(exe) if exe.exists() else shutil.which("oodbench")


def _run_args(toy, synth_root, out, results, ckpt, dataset, *extra):
    return ["run", "--method", "toy", "--checkpoint", toy[ckpt], "--dataset", dataset, "--data-root", synth_root,
            "--out", out, "--results", results, "-q", *extra]


def run_killed(args, env: dict, writes: int, gate: Path) -> None:
    """Run ``oodbench ARGS``, let exactly ``writes`` store writes finish, then SIGKILL it."""
    gate.mkdir(parents=True, exist_ok=True)
    full = {**os.environ, "OMP_NUM_THREADS": "1", **env,
            "OODBENCH_TEST_GATE_WRITES": str(writes), "OODBENCH_TEST_GATE_DIR": str(gate)}
    proc = subprocess.Popen([console_script(), *map(str, args)], env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (gate / "blocked").exists():
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"run ended (rc {proc.returncode}) before the gate:\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("run never reached the write gate")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def _record(results: Path, dataset: str) -> dict:
    (path,) = results.glob(f"toy__{dataset}__*.json")  # <name>__<split>__<protocol>.json: exactly one
    return json.loads(path.read_text())


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_mode)
            for p in sorted(root.rglob("*"))}


# -- item 2: mixed checkpoints --------------------------------------------------------------------
@pytest.fixture(scope="module")
def overwrite_killed(toy, synth_root, tmp_path_factory, cli):
    """A complete store of checkpoint A, then ``--overwrite`` with B SIGKILLed after 3 frames."""
    work = tmp_path_factory.mktemp("overwrite_killed")
    out = work / "out"
    cli(*_run_args(toy, synth_root, out, work / "res_a", "A", "road-anomaly"), env=toy["env"])
    cli(*_run_args(toy, synth_root, work / "clean_b", work / "res_b", "B", "road-anomaly"), env=toy["env"])
    run_killed(_run_args(toy, synth_root, out, work / "res_killed", "B", "road-anomaly", "--overwrite"),
               toy["env"], writes=3, gate=work / "gate")
    killed = work / "killed_copy"
    shutil.copytree(out, killed)
    return work, out, killed


@pytest.mark.slow
def test_interrupted_overwrite_resumes_without_counting_the_old_checkpoint(overwrite_killed, toy, synth_root, cli):
    work, out, _ = overwrite_killed
    clean_a, clean_b = _record(work / "res_a", "road-anomaly"), _record(work / "res_b", "road-anomaly")
    assert clean_a["metrics"] != clean_b["metrics"]  # the two checkpoints are distinguishable
    folder = out / "anomaly_p" / "toy" / "road-anomaly"
    stale = folder / ".tmp-x.hdf5.999999999-deadbeef.hdf5"  # left by a killed writer long ago
    stale.write_bytes(b"\0" * 1024)
    os.utime(stale, (LONG_AGO, LONG_AGO))
    cli(*_run_args(toy, synth_root, out, work / "res_resumed", "B", "road-anomaly"), env=toy["env"])  # no --overwrite
    resumed = _record(work / "res_resumed", "road-anomaly")
    assert resumed["metrics"] == clean_b["metrics"]
    assert resumed["checkpoint_sha256"] == clean_b["checkpoint_sha256"]
    assert resumed["notes"]["run"]["predicted"] == 5 and resumed["notes"]["run"]["skipped"] == 3
    assert resumed["notes"]["run"]["replaced_other_config"] == 5
    assert not stale.exists()  # item 11: the next run on the store swept it


@pytest.mark.slow
def test_evaluate_refuses_a_store_with_two_configurations(overwrite_killed, synth_root, cli):
    _, _, killed = overwrite_killed
    proc = cli("evaluate", "--predictions", killed, "--method", "toy", "--dataset", "road-anomaly",
               "--data-root", synth_root, "-q", check=False)
    assert proc.returncode == 2, proc.stderr
    assert "holds frames of more than one configuration" in proc.stderr
    folder = killed / "anomaly_p" / "toy" / "road-anomaly"
    with h5py.File(next(folder.glob("*.hdf5"))) as fh:
        assert len(fh.attrs[CONFIG_ATTR]) == 64
    names = sorted(p.stem for p in folder.glob("*.hdf5"))
    assert all(n in proc.stderr for n in names[:5])  # frames of both configurations are named


@pytest.mark.slow
def test_store_without_manifest_is_refused_unless_adopted(overwrite_killed, toy, synth_root, cli, tmp_path):
    work, _, _ = overwrite_killed
    # a store of checkpoint A copied without its hidden manifest, resumed with checkpoint B
    copy = tmp_path / "copy"
    shutil.copytree(work / "clean_b", copy, ignore=shutil.ignore_patterns(".oodbench-run.json"))
    proc = cli(*_run_args(toy, synth_root, copy, tmp_path / "r1", "A", "road-anomaly"), env=toy["env"], check=False)
    assert proc.returncode == 2 and "holds predictions of a different configuration" in proc.stderr
    assert "no run manifest" in proc.stderr and not (tmp_path / "r1").exists()
    # frames with no configuration record (another tool, an older oodbench) and no manifest
    legacy = tmp_path / "legacy"
    shutil.copytree(work / "clean_b", legacy, ignore=shutil.ignore_patterns(".oodbench-run.json"))
    for path in (legacy / "anomaly_p" / "toy" / "road-anomaly").glob("*.hdf5"):
        with h5py.File(path, "r+") as fh:
            del fh.attrs[CONFIG_ATTR]
    args = _run_args(toy, synth_root, legacy, tmp_path / "r2", "B", "road-anomaly")
    proc = cli(*args, env=toy["env"], check=False)
    assert proc.returncode == 2 and "carry no configuration record" in proc.stderr and "--adopt-store" in proc.stderr
    cli(*_run_args(toy, synth_root, legacy, tmp_path / "r3", "B", "road-anomaly", "--adopt-store"), env=toy["env"])
    manifest = json.loads((legacy / "anomaly_p" / "toy" / "road-anomaly" / ".oodbench-run.json").read_text())
    assert manifest["adopted"]["by"] == "oodbench run --adopt-store" and len(manifest["adopted"]["frames"]) == 8
    rec = _record(tmp_path / "r3", "road-anomaly")
    assert rec["notes"]["run"]["adopted"] == 8 and rec["metrics"] == _record(work / "res_b", "road-anomaly")["metrics"]


def _fill(store: PredictionStore, split, configs, semantic: bool = False) -> list[str]:
    ids = split.frame_ids()
    for i, fid in enumerate(ids):
        shape = split.load(fid).label.shape
        digest = configs(i)
        store.write_anomaly(split.key, fid, np.random.default_rng(i).random(shape),
                            **({} if digest is None else {"config": digest}))
        if semantic:
            store.write_semantic(split.key, fid, np.zeros(shape, np.uint8))
    return ids


def test_evaluate_split_refuses_frames_of_two_configurations(synth_root, tmp_path):
    from oodbench import datasets as D
    from oodbench import store as S
    from oodbench.evaluate import evaluate_split

    assert S.CONFIG_ATTR == CONFIG_ATTR
    MixedPredictionsError = S.MixedPredictionsError

    split = D.get_split("road-anomaly", synth_root, check_count=False)
    store = PredictionStore(tmp_path, "m")
    ids = _fill(store, split, lambda i: "a" * 64 if i < 3 else "b" * 64)
    with pytest.raises(MixedPredictionsError, match=rf"configuration aaaaaaaaaaaa: {ids[0]}, {ids[1]}, {ids[2]};"
                                                     rf" configuration bbbbbbbbbbbb: {ids[3]}"):
        evaluate_split(split, store, progress=False)
    store.write_anomaly(split.key, ids[0], np.zeros(split.load(ids[0]).label.shape), config=None)
    with pytest.raises(MixedPredictionsError, match=rf"no configuration record: {ids[0]}"):
        evaluate_split(split, store, progress=False)
    _fill(store, split, lambda i: "a" * 64)
    store.write_run_manifest(split.key, {"config_digest": "b" * 64})  # frames of A under B's manifest
    with pytest.raises(MixedPredictionsError, match="but the manifest says configuration bbbbbbbbbbbb"):
        evaluate_split(split, store, progress=False)


# -- item 3: lost semantic maps -------------------------------------------------------------------
@pytest.fixture(scope="module")
def semantic_killed(toy, synth_root, tmp_path_factory, cli):
    """A run on a split with semantic labels, SIGKILLed after 5 writes: frame 3 has one of its two
    outputs (old write order: the .hdf5 without its .png)."""
    work = tmp_path_factory.mktemp("semantic_killed")
    cli(*_run_args(toy, synth_root, work / "clean", work / "res_clean", "A", "streethazards-test"), env=toy["env"])
    run_killed(_run_args(toy, synth_root, work / "out", work / "res_killed", "A", "streethazards-test"),
               toy["env"], writes=5, gate=work / "gate")
    return work


@pytest.mark.slow
def test_kill_between_a_frames_outputs_loses_no_metric(semantic_killed, toy, synth_root, cli):
    work = semantic_killed
    stored = lambda sub, ext: sorted(p.stem for p in (work / "out" / sub / "toy" / "streethazards-test").glob(ext))
    assert stored("anomaly_p", "*.hdf5") != stored("semantic", "*.png")  # the kill split a frame
    cli(*_run_args(toy, synth_root, work / "out", work / "res_resumed", "A", "streethazards-test"), env=toy["env"])
    resumed, clean = _record(work / "res_resumed", "streethazards-test"), _record(work / "res_clean", "streethazards-test")
    assert {"open_miou", "closed_miou"} <= set(resumed["metrics"])
    assert resumed["metrics"] == clean["metrics"]


def test_evaluator_never_drops_semantic_metrics_silently(toy, synth_root, tmp_path, cli):
    from oodbench import datasets as D
    from oodbench.evaluate import MissingPredictionsError, evaluate_split

    split = D.get_split("streethazards-test", synth_root, check_count=False)
    store = PredictionStore(tmp_path, "m")
    ids = _fill(store, split, lambda i: None, semantic=True)
    store.semantic_path(split.key, ids[2]).unlink()
    with pytest.raises(MissingPredictionsError, match=rf"1 of {len(ids)} frames .* no semantic prediction .*{ids[2]}"):
        evaluate_split(split, store, progress=False)
    shutil.rmtree(store.semantic_dir(split.key))  # anomaly-only predictions: reported, visibly
    with pytest.warns(UserWarning, match="open_miou and closed_miou are not computed"):
        ev = evaluate_split(split, store, progress=False)
    assert "open_miou" not in ev.metrics and set(ev.notes["metrics_not_computed"]) == {"open_miou", "closed_miou"}


# -- item 10: disk full ---------------------------------------------------------------------------
def _fsize_limit(limit: int):
    def pre() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return pre


@pytest.mark.slow
@pytest.mark.parametrize("how", ["tmpfs", "rlimit"])
def test_full_disk_exits_2_naming_the_folder(how, toy, synth_root, tmp_path):
    out = tmp_path / "small"
    out.mkdir()
    pre = None
    if how == "tmpfs":
        if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(out)],
                                               capture_output=True, check=False).returncode != 0:
            pytest.skip("mounting a tmpfs needs root")
    else:
        pre = _fsize_limit(40_000)
    try:
        proc = subprocess.run(
            [console_script(), *map(str, _run_args(toy, synth_root, out / "store", tmp_path / "res", "A", "streethazards-test"))],
            env={**os.environ, "OMP_NUM_THREADS": "1", **toy["env"]}, capture_output=True, text=True,
            preexec_fn=pre, timeout=300, check=False)
        assert proc.returncode == 2, proc.stderr[-3000:]
        code = errno.ENOSPC if how == "tmpfs" else errno.EFBIG
        assert re.search(rf"oodbench: error: \[Errno {code}\] {re.escape(str(out))}/store/(anomaly_p|semantic)/toy/"
                         r"streethazards-test: no space left while writing \d+\.(hdf5|png)", proc.stderr), proc.stderr
        assert "Traceback" not in proc.stderr
        assert not list((out / "store").rglob(".tmp-*"))
    finally:
        if how == "tmpfs":
            subprocess.run(["umount", str(out)], check=True)


def test_a_failing_write_raises_disk_full_naming_the_folder(tmp_path, monkeypatch):
    store = PredictionStore(tmp_path, "m")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(atomic.DiskFullError, match=rf"{re.escape(str(store.anomaly_dir('k')))}: no space left while "
                                                  r"writing f\.hdf5") as exc:
        store.write_anomaly("k", "f", np.zeros((2, 2), np.float32))
    assert exc.value.errno == errno.ENOSPC and list(store.anomaly_dir("k").iterdir()) == []


# -- item 11 ---------------------------------------------------------------------------------------
def test_outputs_honour_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        store = PredictionStore(tmp_path, "m")
        store.write_anomaly("k", "f", np.zeros((2, 2), np.float32))
        store.write_semantic("k", "f", np.zeros((2, 2), np.uint8))
        atomic_write_json(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(old)
    for path in (store.anomaly_path("k", "f"), store.semantic_path("k", "f"), tmp_path / "r.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path


def test_stale_temporaries_are_swept_by_the_next_write(tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    long_ago = LONG_AGO
    stale_old_style = folder / ".tmp-last.pth.k2j3h4.pth"           # mkstemp name, older releases
    stale_dead_pid = folder / ".tmp-last.pth.999999999-0a1b2c3d.pth"
    live = folder / f".tmp-last.pth.{os.getppid()}-0a1b2c3d.pth"     # a running writer's file
    fresh = folder / ".tmp-last.pth.999999999-ffffffff.pth"          # newer than this process
    for p in (stale_old_style, stale_dead_pid, live, fresh):
        p.write_bytes(b"x")
    for p in (stale_old_style, stale_dead_pid, live):
        os.utime(p, (long_ago, long_ago))
    atomic_write_json(folder / "config.json", {})
    assert sorted(p.name for p in folder.iterdir()) == sorted(["config.json", live.name, fresh.name])
    assert atomic.clean_stale_temps(folder, before=time.time() + 60) == [fresh]  # explicit cut-off


@pytest.mark.slow
def test_complete_read_only_store_is_never_written(semantic_killed, toy, synth_root, cli, tmp_path):
    store = semantic_killed / "clean"
    before = _snapshot(store)
    modes = {p: p.stat().st_mode for p in store.rglob("*")}
    for p in [*store.rglob("*"), store]:
        p.chmod(stat.S_IMODE(p.stat().st_mode) & ~0o222)
    try:
        rerun = cli(*_run_args(toy, synth_root, store, tmp_path / "r", "A", "streethazards-test"), env=toy["env"],
                    check=False)
        ev = cli("evaluate", "--predictions", store, "--method", "toy", "--dataset", "streethazards-test",
                 "--data-root", synth_root, "-q", check=False)
    finally:
        for p, mode in modes.items():
            p.chmod(stat.S_IMODE(mode))
        store.chmod(0o755)
    assert rerun.returncode == 0, rerun.stderr
    assert ev.returncode == 0, ev.stderr
    assert _snapshot(store) == before
    assert _record(tmp_path / "r", "streethazards-test")["notes"]["run"]["predicted"] == 0


@pytest.mark.parametrize("value", ["0", "-2", "x"])
def test_batch_size_must_be_positive(value, capsys):
    from oodbench.cli import build_parser

    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["run", "--method", "energy", "--dataset", "road-anomaly", "--batch-size", value])
    assert exc.value.code == 2 and "--batch-size" in capsys.readouterr().err


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_finite_scores_beyond_the_storage_dtype_are_named_not_called_infinite(dtype, tmp_path):
    store = PredictionStore(tmp_path, "m")
    huge = np.array([[1e300, 0.0], [1.0, 2.0]])
    with pytest.raises(ContractError, match=rf"finite but reach \|s\| = 1e\+300, out of range for the storage dtype {dtype}"):
        store.write_anomaly("k", "f", huge, dtype=dtype)
    assert not store.has_anomaly("k", "f")
    if dtype == "float16":  # beyond float32 but within the guard's reach: mapped, order kept
        store.write_anomaly("k", "g", np.array([[1e40, 1e45], [-1e50, 1.0]]), dtype=dtype)
        out = store.read_anomaly("k", "g").astype(np.float64)
        assert np.isfinite(out).all() and out[1, 0] < out[1, 1] < out[0, 0] < out[0, 1]
