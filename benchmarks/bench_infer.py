"""Segmenter inference throughput: images/s by batch size, precision, memory format and compilation.

The forward pass of a registered segmenter (default: WRN38 DeepLabV3+, the RPL backbone) on a
resident random batch at the Cityscapes resolution 1024x2048, with ``torch.inference_mode``, in
every combination of

* batch size (default 1 and 4);
* precision: fp32 (TF32 matmuls/convolutions allowed on CUDA, PyTorch's default for cuDNN
  convolutions) and bf16 autocast (on CPU too, where PyTorch supports it);
* memory format: NCHW and channels_last (model and input);

then ``torch.compile`` of the bf16 + channels_last model, in a child process that is stopped after
``--compile-timeout`` seconds (compilation included), so a slow compiler costs a bounded time and
is reported as skipped. Each row: median images/s over timed batches after warm-up (CUDA:
synchronised), the best batch, and the peak memory (CUDA allocator peak since the row began; 0 on
CPU). Rows are written to ``--json`` as they finish, so an interrupted run keeps the rows done.
Usage::

    python benchmarks/bench_infer.py --device cuda --json infer.json           # 1024x2048, WRN38
    python benchmarks/bench_infer.py --device cpu --segmenter deeplabv3plus_small --size 64 128 \\
        --batches 1 2 --min-time 0.2 --compile-backend eager                     # plumbing check
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _proc import run_with_deadline


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(model: torch.nn.Module, device: torch.device, batch: int, size: tuple[int, int], amp: bool,
            channels_last: bool, warmup: int, min_time: float, max_iters: int) -> dict:
    """Median images/s of ``model`` on a resident batch (module doc); the model is already placed."""
    x = torch.randn(batch, 3, *size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    ctx = torch.autocast(device_type=device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    with torch.inference_mode(), ctx:
        t_first = time.perf_counter()
        for _ in range(max(warmup, 1)):
            out = model(x)
        _sync(device)
        first_s = time.perf_counter() - t_first
        start = time.perf_counter()
        while len(times) < max_iters and (len(times) < 2 or time.perf_counter() - start < min_time):
            t0 = time.perf_counter()
            out = model(x)
            _sync(device)
            times.append(time.perf_counter() - t0)
    logits = out[1] if isinstance(out, tuple) else out
    if not torch.isfinite(logits.float()).all():
        raise FloatingPointError(f"non-finite logits (batch {batch}, amp {amp}, channels_last {channels_last})")
    med = statistics.median(times)
    return {"batch": batch, "precision": "bf16 autocast" if amp else "fp32", "channels_last": channels_last,
            "images_per_s": batch / med, "images_per_s_best": batch / min(times), "timed_batches": len(times),
            "warmup_s": round(first_s, 3), "out_dtype": str(logits.dtype).replace("torch.", ""),
            "peak_mib": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0}


def build(segmenter: str, device: torch.device, channels_last: bool) -> torch.nn.Module:
    from oodbench import segmenters

    torch.manual_seed(0)
    model = segmenters.build(segmenter).eval().to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def _write(path: str | None, report: dict) -> None:
    if path:
        tmp = Path(path).with_suffix(".tmp")
        tmp.write_text(json.dumps(report, indent=2))
        os.replace(tmp, path)


def eager_rows(args, device: torch.device, report: dict) -> None:
    for channels_last in (False, True):
        model = build(args.segmenter, device, channels_last)
        for amp in (False, True):
            for batch in args.batches:
                row = measure(model, device, batch, tuple(args.size), amp, channels_last, args.warmup,
                              args.min_time, args.max_iters)
                report["rows"].append({**row, "compiled": False})
                _write(args.json, report)
                print(_row_line(report["rows"][-1]), flush=True)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()


def compiled_rows(args, device: torch.device, report: dict) -> None:
    """Child-process body: ``torch.compile`` the bf16 + channels_last model, largest batch first."""
    model = torch.compile(build(args.segmenter, device, True), backend=args.compile_backend)
    for batch in sorted(args.batches, reverse=True):
        row = measure(model, device, batch, tuple(args.size), True, True, args.warmup, args.min_time, args.max_iters)
        row.update(compiled=True, compile_backend=args.compile_backend, compile_s=row["warmup_s"])
        report["rows"].append(row)
        _write(args.json, report)
        print(_row_line(row), flush=True)


def run_compile_child(args, report: dict) -> None:
    """Run :func:`compiled_rows` in a child with a deadline; merge its rows or note why there are none."""
    child_json = str(Path(args.json or "bench_infer.json").with_suffix(".compile.json"))
    cmd = [sys.executable, __file__, "--compile-child", "--json", child_json, "--device", args.device,
           "--segmenter", args.segmenter, "--size", *map(str, args.size), "--batches", *map(str, args.batches),
           "--warmup", str(args.warmup), "--min-time", str(args.min_time), "--max-iters", str(args.max_iters),
           "--compile-backend", args.compile_backend]
    log_path = Path(child_json).with_suffix(".log")
    with open(log_path, "w") as log:
        done_in = run_with_deadline(cmd, args.compile_timeout, log=log)
    text = log_path.read_text(errors="replace")
    sys.stdout.write(text)
    log_path.unlink()
    if done_in.timed_out:
        note = f"stopped after {args.compile_timeout:g} s (compilation + timing did not finish)"
    else:
        note = None if done_in.returncode == 0 else f"exit {done_in.returncode}: {text.strip()[-800:]}"
    done = json.loads(Path(child_json).read_text())["rows"] if Path(child_json).is_file() else []
    Path(child_json).unlink(missing_ok=True)
    report["rows"].extend(done)
    report["compile"] = {"backend": args.compile_backend, "seconds": round(done_in.seconds, 1),
                         "rows": len(done), "note": note}
    _write(args.json, report)
    print(f"torch.compile ({args.compile_backend}): {len(done)} rows" + (f"; {note}" if note else ""), flush=True)


def _row_line(r: dict) -> str:
    mode = ("compiled " if r.get("compiled") else "") + ("channels_last" if r["channels_last"] else "NCHW")
    return (f"| {r['batch']} | {r['precision']} | {mode} | {r['images_per_s']:.2f} | {r['images_per_s_best']:.2f} "
            f"| {r['peak_mib']:.0f} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--segmenter", default="deeplabv3plus_wrn38")
    p.add_argument("--size", type=int, nargs=2, default=(1024, 2048), metavar=("H", "W"))
    p.add_argument("--batches", type=int, nargs="+", default=(1, 4))
    p.add_argument("--warmup", type=int, default=2, help="untimed batches per row (cuDNN autotuning, compilation)")
    p.add_argument("--min-time", type=float, default=2.0, help="time each row for at least this many seconds")
    p.add_argument("--max-iters", type=int, default=50, help="... but at most this many batches")
    p.add_argument("--compile-timeout", type=float, default=90.0,
                   help="seconds for the torch.compile child (compilation and timing); 0: no compile rows")
    p.add_argument("--compile-backend", default="inductor", help="torch.compile backend ('eager' checks the plumbing)")
    p.add_argument("--json", default=None, help="write the rows here (updated after every row)")
    p.add_argument("--compile-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    report = {"segmenter": args.segmenter, "device": str(device), "size": list(args.size), "torch": torch.__version__,
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None, "rows": []}
    if args.compile_child:
        compiled_rows(args, device, report)
        return 0
    print(f"{args.segmenter} inference at {args.size[0]}x{args.size[1]} on {report['gpu'] or 'cpu'}\n")
    print("| batch | precision | mode | images/s (median) | images/s (best) | peak MiB |\n|---|---|---|---|---|---|")
    eager_rows(args, device, report)
    if args.compile_timeout > 0:
        run_compile_child(args, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
