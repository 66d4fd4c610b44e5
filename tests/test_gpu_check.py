"""The device check (``benchmarks/gpu_check.sh``): the CPU rehearsal runs every step end to end
(slow test, so the script cannot rot without CI noticing), and the orchestration keeps its promises
-- a hanging step is stopped with all its processes, a failing one does not stop the others, steps
whose inputs failed are skipped with the reason, and every outcome lands in the JSON and markdown."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its (killed) parent is gone for our purpose
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_a_stopped_command_takes_its_whole_process_group_along(tmp_path, script):
    proc = script("benchmarks/_proc.py")
    pids = tmp_path / "pids"
    code = ("import subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            f"open({str(pids)!r}, 'w').write(str(c.pid)); time.sleep(60)")
    with open(tmp_path / "log", "w") as log:
        fin = proc.run_with_deadline([sys.executable, "-c", code], 3.0, log=log, grace=0.5)
    assert fin.timed_out and fin.returncode is None and fin.seconds < 20
    grandchild = int(pids.read_text())
    deadline = time.time() + 5
    while _alive(grandchild) and time.time() < deadline:
        time.sleep(0.1)
    assert not _alive(grandchild)
    ok = proc.run_with_deadline([sys.executable, "-c", "print('hi')"], 30.0)
    assert ok.returncode == 0 and not ok.timed_out


def test_failures_timeouts_and_skips_are_reported_not_fatal(tmp_path, script, monkeypatch, capsys):
    gc = script("benchmarks/gpu_check.py")
    py = sys.executable

    def fake_plan(args, work):
        return [
            gc.Step("env", "probe", 30, [py, "-c", gc.ENV_PROBE, str(work / "env.json")], work / "env.json"),
            gc.Step("data", "fails", 30, [py, "-c", "import sys; print('boom'); sys.exit(3)"]),
            gc.Step("run", "needs data", 30, [py, "-c", "print('never')"], None, ("data",)),
            gc.Step("infer", "hangs", 2, [py, "-c", "import time; time.sleep(60)"]),
            gc.Step("group", "writes json", 30, [py, "-c", f"import json; json.dump({{'backend': 'gloo', "
                    f"'global_bn': 'X x1', 's_per_iter_median': 0.5}}, open({str(work / 'g.json')!r}, 'w'))"],
                    work / "g.json"),
        ]

    monkeypatch.setattr(gc, "plan", fake_plan)
    monkeypatch.setattr(gc, "setup", lambda args, env, log, timeout: {"wheels": [], "installed_oodbench": False,
                                                                      "missing_modules": []})
    out = tmp_path / "out"
    rc = gc.main(["--device", "cpu", "--quick", "--out", str(out), "--commit", "abc123"])
    assert rc == 1
    report = json.loads((out / "gpu_check.json").read_text())
    status = {s["name"]: s["status"] for s in report["steps"]}
    assert status == {"setup": "ok", "env": "ok", "data": "failed", "run": "skipped", "infer": "timeout", "group": "ok"}
    steps = {s["name"]: s for s in report["steps"]}
    assert "boom" in steps["data"]["log_tail"] and steps["data"]["reason"] == "exit 3"
    assert steps["run"]["reason"] == "needs data" and steps["infer"]["seconds"] < 20
    assert report["meta"]["commit"] == "abc123" and report["summary"]["timeout"] == ["infer"]
    md = (out / "gpu_check.md").read_text()
    assert "| group | writes json | ok |" in md and "gloo, X x1, DDP; 0.500 s/iter" in md
    assert "not ok: data (failed), infer (timeout), run (skipped)" in md
    assert md.strip() in capsys.readouterr().out


@pytest.mark.slow
def test_cpu_quick_rehearsal_passes_and_prints_the_table(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(ROOT / "benchmarks" / "gpu_check.sh"), "--device", "cpu", "--quick", "--out", str(out),
                           "--no-install"], capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    names = [s["name"] for s in report["steps"]]
    assert names == ["setup", "env", "tests", "data", "group", "train", "infer", "run", "rpl_train"]
    assert all(s["status"] == "ok" for s in report["steps"]), report["summary"]
    steps = {s["name"]: s["result"] for s in report["steps"]}
    assert steps["tests"]["skipped"] > 0 and steps["tests"]["failed"] == steps["tests"]["errors"] == 0
    assert steps["group"]["backend"] == "gloo" and "DistBatchNorm2d" in steps["group"]["global_bn"]
    assert steps["train"]["iterations"] == 4 and steps["train"]["resumed_at"] == 2 and steps["train"]["amp"] == "bf16"
    infer = steps["infer"]["rows"]
    assert {(r["precision"], r["channels_last"]) for r in infer if not r["compiled"]} == {
        ("fp32", False), ("fp32", True), ("bf16 autocast", False), ("bf16 autocast", True)}
    assert any(r["compiled"] for r in infer)
    assert [r["precision"] for r in steps["rpl_train"]["rows"]] == ["fp32", "bf16 autocast"]
    assert steps["run"]["run_over_forward"] > 0
    assert "| step | what | status | s | numbers |" in proc.stdout and "| rpl_train |" in proc.stdout
    assert (out / "gpu_check.md").read_text().strip() in proc.stdout
    assert report["wall_s"] < 300


@pytest.mark.parametrize("device,quick", [("cuda", False), ("cpu", True)])
def test_every_planned_command_line_parses(tmp_path, script, monkeypatch, device, quick):
    """The full-size commands never run here: at least their flags must be what the scripts accept."""
    import argparse

    gc = script("benchmarks/gpu_check.py")
    steps = gc.plan(argparse.Namespace(device=device, quick=quick), tmp_path)
    assert [s.name for s in steps] == list(gc.STEP_ORDER[1:])

    class Parsed(Exception):
        pass

    real = argparse.ArgumentParser.parse_args

    def parse_only(self, args=None, namespace=None):
        raise Parsed(real(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_only)
    checked = 0
    for step in steps:
        if not step.argv[1].endswith(".py"):
            continue
        mod = script(str(Path(step.argv[1]).relative_to(ROOT)))
        with pytest.raises(Parsed) as got:
            mod.main(step.argv[2:])
        ns = got.value.args[0]
        if "--device" in step.argv:
            assert ns.device == device, step.name
        checked += 1
    assert checked == 6
