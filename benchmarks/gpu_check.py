"""The device check: run every CUDA path of oodbench once, measure it, and report, in bounded time.

A GPU machine is lent to some tasks only, for minutes, so this check is prepared and tested on CPU
(``--device cpu --quick``, a CI slow test) and runs on the lent machine in one call. It needs only
the standard library itself; each step is a child process (its own session, killed with all its
workers at its time limit), run in this order:

=========  ==========================================================================================
setup      install carried wheels (``--wheels``, default ``<repo>/.whl``) into a private folder on
           ``PYTHONPATH``; ``pip install --no-deps --no-build-isolation --no-index -e <repo>`` only
           when ``oodbench`` is not importable (the machine's torch is never touched)
env        GPU name and memory, driver, torch / CUDA / cuDNN / NCCL versions, oodbench's path
tests      ``pytest -m cuda``: every test marked ``cuda`` (they skip without CUDA)
data       the small synthetic data root (``bench_rpl_train.py --prepare-data``)
group      RPL training with a one-rank process group: NCCL + SyncBatchNorm + DDP on CUDA
           (gloo + DistBatchNorm2d on CPU) -- ``check_train.py group``
train      ``oodbench train --method rpl`` for N iterations, stopped half-way and resumed
           (``check_train.py resume``)
infer      segmenter forward: images/s by batch, fp32 / bf16 autocast, NCHW / channels_last, and
           ``torch.compile`` when it compiles in time (``bench_infer.py``)
run        ``oodbench run`` end to end on upscaled synthetic frames vs forward only (``bench_run.py``)
rpl_train  one RPL+CoroCL training step, fp32 vs bf16: s/iter and peak memory (``bench_rpl_train.py``)
=========  ==========================================================================================

Full mode (``--device cuda``) uses the issue's sizes: WRN38 DeepLabV3+, 1024x2048 inference at
batch 1 and 4, 700x700 training crops at batch 8; ``--quick`` uses toy sizes. The whole check
keeps to ``--budget`` seconds: every step's limit is cut to what is left, and a step that cannot
start in time is reported as skipped. After every step ``gpu_check.json`` and ``gpu_check.md`` are
rewritten in ``--out`` (default ``$OUT``), with the partial result of a step that failed or was
stopped, and ``gpu_check.log`` holds all output. Exit status 0 only when every step passed.
Usage (``benchmarks/gpu_check.sh`` forwards its arguments here)::

    bash benchmarks/gpu_check.sh --commit <sha>                    # on the GPU machine, results to $OUT
    bash benchmarks/gpu_check.sh --device cpu --quick --out /tmp/gc  # the CI / laptop rehearsal
    bash benchmarks/gpu_check.sh --steps infer,run --budget 200    # a rerun of some steps
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _proc import run_with_deadline

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
STEP_ORDER = ("setup", "env", "tests", "data", "group", "train", "infer", "run", "rpl_train")
#: a step is not started with less than this many seconds of budget left
MIN_START_S = 15.0

ENV_PROBE = r"""
import json, os, platform, sys, torch
d = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
     "cudnn": torch.backends.cudnn.version(), "cuda_available": torch.cuda.is_available(),
     "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    d.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), capability=f"{p.major}.{p.minor}",
             multiprocessors=p.multi_processor_count, gpu_count=torch.cuda.device_count())
    try:
        v = torch.cuda.nccl.version()
        d["nccl"] = ".".join(map(str, v)) if isinstance(v, tuple) else str(v)
    except Exception as exc:  # reported, not fatal: the group step says whether NCCL works
        d["nccl"] = f"unavailable ({exc})"
import oodbench
d["oodbench"], d["oodbench_path"] = oodbench.__version__, os.path.dirname(oodbench.__file__)
json.dump(d, open(sys.argv[1], "w"), indent=2)
"""


@dataclass
class Step:
    """One child process of the check (see module doc)."""

    name: str
    what: str
    timeout: float
    argv: list[str]
    json_out: Path | None = None
    needs: tuple[str, ...] = ()
    result: dict[str, Any] = field(default_factory=dict)


def plan(args: argparse.Namespace, work: Path) -> list[Step]:
    """The steps after ``setup`` with their commands, sizes and time limits for this mode."""
    py, dev, q = sys.executable, args.device, args.quick
    data = work / "data"
    gpu = dev.startswith("cuda")
    # a hung test (an NCCL rendezvous, say) must not eat the step: per-test limit where the plugin exists
    per_test = ["--timeout", "120"] if importlib.util.find_spec("pytest_timeout") else []
    steps = [
        Step("env", "GPU, driver, torch/CUDA/cuDNN/NCCL versions", 60, [py, "-c", ENV_PROBE, str(work / "env.json")],
             work / "env.json"),
        Step("tests", "pytest -m cuda", 180 if not q else 150,
             [py, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", "-rfEs", "--junitxml",
              str(work / "junit.xml"), *per_test, "-c", str(REPO / "pyproject.toml"), "--rootdir", str(REPO),
              str(REPO / "tests")]),
        Step("data", "synthetic data root", 120, [py, BENCH / "bench_rpl_train.py", "--prepare-data", str(data)]),
    ]
    if q:
        seg, crop, batch, workers = "deeplabv3plus_small", 64, 2, 0
        group = ["--crop", "64", "--batch", "2", "--iters", "3"]
        train = ["--crop", "64", "--batch", "2", "--iters", "4"]
        infer = ["--size", "64", "128", "--batches", "1", "2", "--min-time", "0.2", "--warmup", "1",
                 "--compile-backend", "eager", "--compile-timeout", "60"]
        run = ["--frames", "2", "--size", "128", "256", "--batch-size", "2"]
        rpl = ["--crop", "64", "--batch", "2", "--warmup", "0", "--iters", "2", "--precisions", "fp32,bf16"]
    else:
        seg, crop, batch, workers = "deeplabv3plus_wrn38", 700, 8, 8
        group = ["--crop", "512", "--batch", "4", "--iters", "4"]
        train = ["--crop", str(crop), "--batch", str(batch), "--iters", "20"]
        infer = ["--size", "1024", "2048", "--batches", "1", "4", "--compile-timeout", "75"]
        run = ["--frames", "32", "--size", "1024", "2048", "--batch-size", "4"]
        rpl = ["--crop", str(crop), "--batch", str(batch), "--warmup", "3", "--iters", "10"]
    amp_cpu = [] if gpu else ["--amp-cpu"]
    ckpt = work / "closed_set.pth"  # random closed-set weights, written once by the first user
    j = {name: work / f"{name}.json" for name in ("group", "train", "infer", "run", "rpl_train")}
    steps += [
        Step("group", "one-rank process group: " + ("NCCL + SyncBatchNorm + DDP" if gpu else "gloo + DistBatchNorm2d + DDP"),
             120, [py, BENCH / "check_train.py", "group", "--data-root", data, "--device", dev, "--segmenter", seg,
                   "--workers", str(workers), *group, *amp_cpu, "--checkpoint", ckpt, "--json", j["group"]], j["group"], ("data",)),
        Step("train", "oodbench train --method rpl, stopped half-way and resumed", 180 if not q else 150,
             [py, BENCH / "check_train.py", "resume", "--data-root", data, "--device", dev, "--segmenter", seg,
              "--workers", str(workers), *train, *amp_cpu, "--checkpoint", ckpt, "--json", j["train"]], j["train"], ("data",)),
        Step("infer", "segmenter forward: fp32/bf16, NCHW/channels_last, torch.compile", 200 if not q else 120,
             [py, BENCH / "bench_infer.py", "--device", dev, "--segmenter", seg, *infer, "--json", j["infer"]], j["infer"]),
        Step("run", "oodbench run end to end vs forward only (bf16)", 150 if not q else 90,
             [py, BENCH / "bench_run.py", "--device", dev, "--amp", "bf16", "--segmenter", seg, "--num-workers",
              str(workers), "--small-root", data, *run, "--json", j["run"]], j["run"], ("data",)),
        Step("rpl_train", "RPL+CoroCL step: fp32 vs bf16, s/iter and peak memory", 200 if not q else 120,
             [py, BENCH / "bench_rpl_train.py", "--device", dev, "--segmenter", seg, "--data-root", data, *rpl,
              "--json", j["rpl_train"]], j["rpl_train"], ("data",)),
    ]
    for s in steps:
        s.argv = [str(a) for a in s.argv]
    return steps


# ------------------------------------------------------------------------------------ setup
def _importable(env: dict, *modules: str) -> list[str]:
    """The modules of ``modules`` that the child Python cannot import."""
    missing = []
    for m in modules:
        r = subprocess.run([sys.executable, "-c", f"import {m}"], env=env, capture_output=True, cwd=tempfile.gettempdir())
        if r.returncode != 0:
            missing.append(m)
    return missing


def setup(args: argparse.Namespace, env: dict, log, timeout: float) -> dict:
    """Wheels onto ``PYTHONPATH``, then oodbench installed (editable, no deps) if not importable."""
    out: dict[str, Any] = {"wheels": [], "installed_oodbench": False}
    t_end = time.perf_counter() + timeout
    wheels = sorted(Path(args.wheels).glob("*.whl")) if args.wheels and Path(args.wheels).is_dir() else []
    if wheels:
        site = Path(tempfile.gettempdir()) / "oodbench-gpu-check-site"
        shutil.rmtree(site, ignore_errors=True)
        r = run_with_deadline([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                               "--no-cache-dir", "--upgrade", "--target", str(site), *map(str, wheels)],
                              t_end - time.perf_counter(), env=env, log=log)
        if r.returncode != 0:
            raise RuntimeError(f"pip install of the wheels in {args.wheels} failed (see gpu_check.log)")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
        out["wheels"] = [w.name for w in wheels]
    if _importable(env, "oodbench.methods"):
        if args.no_install:
            raise RuntimeError("oodbench is not importable and --no-install was given")
        r = run_with_deadline([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                               "--no-index", "-e", str(REPO)], t_end - time.perf_counter(), env=env, log=log)
        if r.returncode != 0 or _importable(env, "oodbench.methods"):
            raise RuntimeError("pip install --no-deps -e . failed (see gpu_check.log)")
        out["installed_oodbench"] = True
    out["missing_modules"] = _importable(env, "cityscapesscripts", "pycocotools")
    return out


def git_commit(given: str | None) -> str:
    if given:
        return given
    try:
        sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return sha + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git checkout here; pass --commit)"


# ------------------------------------------------------------------------------------ results
def junit_counts(path: Path) -> dict[str, Any]:
    """Counts and failing test ids from pytest's JUnit XML."""
    root = ET.parse(path).getroot()
    out = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0, "failed_tests": [], "passed_tests": []}
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        kinds = {child.tag for child in case}
        if "failure" in kinds or "error" in kinds:
            out["failed" if "failure" in kinds else "errors"] += 1
            out["failed_tests"].append(name)
        elif "skipped" in kinds:
            out["skipped"] += 1
        else:
            out["passed"] += 1
            out["passed_tests"].append(name)
    return out


def read_result(step: Step, work: Path) -> dict[str, Any]:
    if step.name == "tests":
        p = work / "junit.xml"
        return junit_counts(p) if p.is_file() else {}
    if step.json_out and step.json_out.is_file():
        data = json.loads(step.json_out.read_text())
        return {"rows": data} if isinstance(data, list) else data
    return {}


def _f(x: Any, nd: int = 2) -> str:
    return f"{x:.{nd}f}" if isinstance(x, (int, float)) else "-"


def headline(name: str, r: dict[str, Any]) -> str:
    """One line of numbers for the summary table."""
    if not r:
        return ""
    if name == "setup":
        miss = r.get("missing_modules")
        return (f"wheels: {len(r.get('wheels', []))}; oodbench installed: {r.get('installed_oodbench')}"
                + (f"; missing: {', '.join(miss)}" if miss else ""))
    if name == "env":
        return (f"{r.get('gpu', 'no GPU')}; torch {r.get('torch')}, CUDA {r.get('cuda')}, cuDNN {r.get('cudnn')}"
                + (f", NCCL {r['nccl']}" if r.get("nccl") else ""))
    if name == "tests":
        return f"{r['passed']} passed, {r['failed']} failed, {r['errors']} errors, {r['skipped']} skipped"
    if name == "group":
        return f"{r['backend']}, {r['global_bn']}, DDP; {_f(r['s_per_iter_median'], 3)} s/iter"
    if name == "train":
        return (f"{r['iterations']} iterations, resumed at {r['resumed_at']}; {_f(r['s_per_iter_median'], 3)} s/iter; "
                f"checkpoint {r['checkpoint_mib']} MiB")
    if name == "infer":
        rows = r.get("rows", [])
        if not rows:
            return "no rows"
        best = max(rows, key=lambda x: x["images_per_s"])
        return (f"best {_f(best['images_per_s'])} images/s (batch {best['batch']}, {best['precision']}, "
                f"{'compiled ' if best.get('compiled') else ''}{'channels_last' if best['channels_last'] else 'NCHW'})")
    if name == "run":
        return (f"forward {_f(r['forward_fps'])} frames/s, run {_f(r['run']['fps'])} frames/s, "
                f"run/forward {_f(r['run_over_forward'])}")
    if name == "rpl_train":
        return "; ".join(f"{x['precision']} {_f(x['s_per_iter'], 3)} s/iter, {x['peak_mib']:.0f} MiB" for x in r.get("rows", []))
    return ""


def details(name: str, r: dict[str, Any]) -> list[str]:
    """Markdown lines detailing a step's numbers (empty when there is nothing beyond the headline)."""
    lines: list[str] = []
    if name == "infer" and r.get("rows"):
        lines += [f"### infer: {r['segmenter']} at {r['size'][0]}x{r['size'][1]}", "",
                  "| batch | precision | memory format | compiled | images/s (median) | images/s (best) | peak MiB |",
                  "|---|---|---|---|---|---|---|"]
        for x in r["rows"]:
            lines.append(f"| {x['batch']} | {x['precision']} | {'channels_last' if x['channels_last'] else 'NCHW'} | "
                         f"{'yes, ' + str(x.get('compile_backend')) if x.get('compiled') else 'no'} | "
                         f"{_f(x['images_per_s'])} | {_f(x['images_per_s_best'])} | {x['peak_mib']:.0f} |")
        c = r.get("compile")
        if c:
            lines += ["", f"torch.compile ({c['backend']}): {c['rows']} rows in {c['seconds']} s"
                      + (f" -- {c['note']}" if c.get("note") else "")]
    elif name == "run" and r:
        lines += [f"### run: {r['segmenter']}, {r['resolution']}, batch {r['batch_size']}, {r['num_workers']} workers, "
                  f"amp {r['amp']}", "", "| forward only (frames/s) | oodbench run (frames/s) | frames | run s | run / forward |",
                  "|---|---|---|---|---|",
                  f"| {_f(r['forward_fps'])} | {_f(r['run']['fps'])} | {r['run']['frames']} | {r['run']['seconds']} | "
                  f"{_f(r['run_over_forward'])} |"]
    elif name == "rpl_train" and r.get("rows"):
        rows = r["rows"]
        fp32 = next((x["s_per_iter"] for x in rows if x["precision"] == "fp32"), None)
        x0 = rows[0]
        lines += [f"### rpl_train: {x0['segmenter']}, {x0['crop']}x{x0['crop']}, batch {x0['batch']} (+{x0['batch']} COCO)",
                  "", "| precision | s/iter (median) | s/iter (min) | speed-up vs fp32 | peak MiB | CoroCL steps |",
                  "|---|---|---|---|---|---|"]
        for x in rows:
            speed = f"{fp32 / x['s_per_iter']:.2f}x" if fp32 else "-"
            lines.append(f"| {x['precision']} | {_f(x['s_per_iter'], 3)} | {_f(x['s_per_iter_min'], 3)} | {speed} | "
                         f"{x['peak_mib']:.0f} ({x['peak_kind']}) | {x['corocl_steps']}/{x['iters']} |")
    elif name == "train" and r:
        lines += [f"### train: {r['segmenter']}, {r['crop']}x{r['crop']}, batch {r['batch']}, amp {r['amp']}", "",
                  "| iterations | resumed at | s/iter (median) | s/iter after resume | legs wall s | checkpoint MiB | CoroCL steps | final loss |",
                  "|---|---|---|---|---|---|---|---|",
                  f"| {r['iterations']} | {r['resumed_at']} | {_f(r['s_per_iter_median'], 3)} | "
                  f"{_f(r['s_per_iter_after_resume'], 3)} | {' + '.join(map(str, r['leg_wall_s']))} | {r['checkpoint_mib']} | "
                  f"{r['corocl_steps']} | {_f(r['final_loss'], 4)} |"]
        if r.get("val"):
            lines += ["", "validation: " + ", ".join(f"{k} {_f(v, 4)}" for k, v in r["val"].items())]
    elif name == "tests" and r.get("failed_tests"):
        lines += ["### tests: failures", ""] + [f"* `{t}`" for t in r["failed_tests"]]
    return lines + [""] if lines else []


def render_markdown(report: dict[str, Any]) -> str:
    m = report["meta"]
    env = _result(report, "env")
    lines = [f"# oodbench device check ({report['mode']})", "",
             f"* device: {env.get('gpu') or report['device']}" + (f", {env['gpu_memory_gib']} GiB" if env.get("gpu_memory_gib") else "")
             + (f", driver {m['driver']}" if m.get("driver") else ""),
             f"* torch {env.get('torch', '?')}, CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}, NCCL {env.get('nccl', '-')}, "
             f"Python {env.get('python', platform.python_version())}, {env.get('cpu_count', os.cpu_count())} CPUs",
             f"* commit: {m['commit']}",
             f"* started {m['started']}, {report['wall_s']:.0f} s of a {report['budget_s']:.0f} s budget", "",
             "| step | what | status | s | numbers |", "|---|---|---|---|---|"]
    for s in report["steps"]:
        status = s["status"] + (f" ({s['reason']})" if s.get("reason") else "")
        lines.append(f"| {s['name']} | {s['what']} | {status.replace('|', '/')} | {_f(s.get('seconds'), 0)} | "
                     f"{headline(s['name'], s.get('result') or {}).replace('|', '/')} |")
    summary = report["summary"]
    lines += ["", "not ok: " + (", ".join(f"{n} ({st})" for st in ("failed", "timeout", "skipped")
                                          for n in summary[st]) or "none"), ""]
    for s in report["steps"]:
        try:
            lines += details(s["name"], s.get("result") or {})
        except (KeyError, TypeError, ValueError) as exc:  # a partial result must not hide the rest
            lines += [f"({s['name']}: partial result, not rendered: {exc!r})", ""]
    return "\n".join(lines)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_report(report: dict[str, Any], out: Path, t0: float) -> str:
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    report["summary"] = {st: [s["name"] for s in report["steps"] if s["status"] == st]
                         for st in ("ok", "failed", "timeout", "skipped")}
    md = render_markdown(report)
    _atomic_write(out / "gpu_check.json", json.dumps(report, indent=2, default=str))
    _atomic_write(out / "gpu_check.md", md + "\n")
    return md


def _result(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next((s["result"] for s in report["steps"] if s["name"] == name), {}) or {}


def _log_tail(path: Path, start: int, n: int = 1500) -> str:
    with open(path, "rb") as fh:
        fh.seek(start)
        return fh.read().decode(errors="replace")[-n:]


# ------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (the full check) or cpu")
    p.add_argument("--quick", action="store_true", help="toy sizes (the CPU rehearsal CI runs)")
    p.add_argument("--out", default=os.environ.get("OUT") or "gpu-check", help="report folder (default: $OUT)")
    p.add_argument("--budget", type=float, default=None, help="seconds for the whole check (default 450; 300 with --quick)")
    p.add_argument("--steps", default=None, help=f"comma list of steps to run (default: all of {','.join(STEP_ORDER[1:])})")
    p.add_argument("--commit", default=None, help="git commit to report (the device copy has no .git)")
    p.add_argument("--wheels", default=str(REPO / ".whl"), help="folder of wheels to install first (fetch_gpu_wheels.sh)")
    p.add_argument("--no-install", action="store_true", help="never pip install oodbench")
    p.add_argument("--keep-work", action="store_true", help="keep the scratch folder (data, checkpoints)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    budget = args.budget if args.budget is not None else (300.0 if args.quick else 450.0)
    deadline = t0 + budget
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="oodbench-gpu-check-"))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    driver = shutil.which("nvidia-smi") and subprocess.run(
        ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
    report: dict[str, Any] = {
        "check": "oodbench benchmarks/gpu_check.py", "device": args.device,
        "mode": f"{args.device}, {'quick (toy sizes)' if args.quick else 'full sizes'}", "budget_s": budget,
        "meta": {"commit": git_commit(args.commit), "started": dt.datetime.now().isoformat(timespec="seconds"),
                 "host": platform.node(), "driver": driver or None, "argv": sys.argv[1:] if argv is None else argv},
        "steps": []}
    log_path = out / "gpu_check.log"
    steps = plan(args, work)
    if args.steps:
        wanted = {s.strip() for s in args.steps.split(",") if s.strip()}
        unknown = wanted - set(STEP_ORDER)
        if unknown:
            p.error(f"--steps: unknown {sorted(unknown)}; choose from {','.join(STEP_ORDER[1:])}")
        wanted |= {"env"} | {d for s in steps if s.name in wanted for d in s.needs}
        steps = [s for s in steps if s.name in wanted]
    done: dict[str, str] = {}
    try:
        with open(log_path, "w") as log:
            def record(name: str, what: str, status: str, seconds: float | None, result: dict, reason: str = "",
                       timeout: float | None = None, tail: str = "") -> None:
                entry = {"name": name, "what": what, "status": status, "seconds": round(seconds, 1) if seconds else seconds,
                         "timeout_s": round(timeout, 1) if timeout else timeout, "reason": reason, "result": result}
                if tail:
                    entry["log_tail"] = tail
                report["steps"].append(entry)
                done[name] = status
                write_report(report, out, t0)
                print(f"[gpu_check] {name}: {status}{' (' + reason + ')' if reason else ''} "
                      f"{_f(seconds, 1)} s  {headline(name, result)}", flush=True)

            # setup runs here, in the parent: it decides the children's environment
            t = time.perf_counter()
            log.write("=== setup\n")
            try:
                res = setup(args, env, log, min(180.0, deadline - t))
                record("setup", "wheels + oodbench install", "ok", time.perf_counter() - t, res)
            except RuntimeError as exc:
                record("setup", "wheels + oodbench install", "failed", time.perf_counter() - t, {}, str(exc))
                steps = []
            missing = set(_result(report, "setup").get("missing_modules", []))
            for step in steps:
                left = deadline - time.perf_counter()
                blocked = [d for d in step.needs if done.get(d) != "ok"]
                reason = ""
                if blocked:
                    reason = f"needs {', '.join(blocked)}"
                elif missing and step.name in ("tests", "data"):
                    reason = f"missing {', '.join(sorted(missing))} (carry wheels: benchmarks/fetch_gpu_wheels.sh)"
                elif args.device.startswith("cuda") and done.get("env") == "ok" and not _result(report, "env").get("cuda_available"):
                    reason = "CUDA is not available"
                elif left < MIN_START_S:
                    reason = f"out of budget ({left:.0f} s left)"
                if reason:
                    record(step.name, step.what, "skipped", None, {}, reason)
                    continue
                limit = min(step.timeout, left)
                log.write(f"\n=== {step.name}: {' '.join(step.argv)}\n")
                log.flush()
                start = log.tell()
                fin = run_with_deadline(step.argv, limit, cwd=work, env=env, log=log)
                log.flush()
                try:
                    result = read_result(step, work)
                except (OSError, ValueError, ET.ParseError) as exc:
                    result = {"unreadable": repr(exc)}
                if fin.timed_out:
                    status, why = "timeout", f"stopped at {limit:.0f} s"
                elif fin.returncode != 0:
                    status, why = "failed", f"exit {fin.returncode}"
                else:
                    status, why = "ok", ""
                tail = _log_tail(log_path, start) if status != "ok" else ""
                record(step.name, step.what, status, fin.seconds, result, why, limit, tail)
    finally:
        md = write_report(report, out, t0)
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    print("\n" + md)
    print(f"\n[gpu_check] report: {out / 'gpu_check.json'}, {out / 'gpu_check.md'}, log {log_path}")
    bad = [s["name"] for s in report["steps"] if s["status"] != "ok"]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
