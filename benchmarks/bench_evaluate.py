#!/usr/bin/env python3
"""``oodbench evaluate`` vs a bare read pass on AnomalyTrack-style 1024x2048 frames.

Writes ``--frames`` (default 10) frames in the official SMIYC layout under a temporary data root:

* ``dataset_AnomalyTrack/images/validationNNNN.jpg`` (a real 2048x1024 JPEG, which evaluation
  must never decode) and ``labels_masks/validationNNNN_labels_semantic.png`` (raw 0 road,
  1 anomaly, 255 void: void above the horizon, a few anomaly blobs of 100..40k px on the road);
* ``anomaly_p/<method>/AnomalyTrack-all/validationNNNN.hdf5``: float16 scores written exactly as
  ``PredictionStore`` writes them (gzip level 9), noisy with raised scores on and around the
  anomalies (so the component pass sees real components, some merged, some false positives),
  plus the run manifest ``oodbench run`` writes next to them.

Then, each in a fresh ``python`` process, ``--repeats`` times (median reported):

* ``bare``: read every label PNG (Pillow) and every HDF5 file (h5py) once -- nothing else;
* ``evaluate``: ``oodbench.cli.main(["evaluate", ...])`` on ``smiyc-anomaly-val``: pixel metrics
  (PixBinaryClass) and the SegEval component metrics, i.e. the SMIYC evaluation.

Both are timed from process start (interpreter and imports included: what a user waits for) and
in-process from after ``import numpy`` (the work alone). The ratio evaluate/bare is the figure of
merit (target: <= 4). Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_evaluate.py [--frames 10] [--repeats 3] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

H, W = 1024, 2048
METHOD = "bench"
SPLIT = "smiyc-anomaly-val"

_BARE = """
import time, sys
t0 = time.perf_counter()
import numpy as np, h5py
from pathlib import Path
from PIL import Image
root, method = Path(sys.argv[1]), sys.argv[2]
labels = sorted((root / "dataset_AnomalyTrack" / "labels_masks").glob("*_labels_semantic.png"))
total = 0
for lab in labels:
    fid = lab.name[: -len("_labels_semantic.png")]
    with Image.open(lab) as im:
        total += int(np.asarray(im)[0, 0])
    with h5py.File(root / "anomaly_p" / method / "AnomalyTrack-all" / f"{fid}.hdf5", "r") as fh:
        total += int(fh["value"][()].shape[0])
print(time.perf_counter() - t0)
"""

_EVALUATE = """
import time, sys
t0 = time.perf_counter()
import numpy
import oodbench.cli as cli
root, method = sys.argv[1], sys.argv[2]
rc = cli.main(["evaluate", "--predictions", root, "--method", method, "--dataset", "smiyc-anomaly-val",
               "--data-root", root, "--json", sys.argv[3], "-q"])
assert rc == 0, rc
dt = time.perf_counter() - t0
print("torch" in sys.modules)
print(dt)
"""


def _frame(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(RGB image, raw label, float32 scores) of one AnomalyTrack-like frame."""
    yy, xx = np.mgrid[0:H, 0:W]
    label = np.zeros((H, W), np.uint8)
    horizon = int(rng.integers(H // 3, H // 2))
    label[:horizon] = 255                                   # sky / off-road void
    label[:, : int(rng.integers(0, W // 8))] = 255
    scores = rng.normal(0.0, 1.0, (H, W)).astype(np.float32)
    for _ in range(int(rng.integers(3, 8))):                # anomalies: ellipses on the road
        cy, cx = int(rng.integers(horizon + 20, H - 20)), int(rng.integers(50, W - 50))
        ry, rx = int(rng.integers(6, 110)), int(rng.integers(6, 140))
        blob = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        label[blob] = 1
        halo = ((yy - cy) / (ry * 1.3)) ** 2 + ((xx - cx) / (rx * 1.3)) ** 2 <= 1.0
        scores[halo] += rng.uniform(2.0, 4.0)               # detections overlap and overshoot
    for _ in range(int(rng.integers(2, 6))):                # false positives
        cy, cx = int(rng.integers(horizon, H - 30)), int(rng.integers(30, W - 30))
        r = int(rng.integers(10, 60))
        scores[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] += rng.uniform(1.5, 3.0)
    image = rng.integers(0, 256, (H // 8, W // 8, 3), dtype=np.uint8)
    image = np.repeat(np.repeat(image, 8, axis=0), 8, axis=1)
    return image, label, 1.0 / (1.0 + np.exp(-scores))


def make_split(root: Path, frames: int, seed: int = 0) -> None:
    """Write ``frames`` AnomalyTrack validation frames and their float16 predictions under ``root``."""
    from PIL import Image

    from oodbench.atomic import atomic_write_json
    from oodbench.datasets import get_split, input_digest
    from oodbench.store import PredictionStore

    rng = np.random.default_rng(seed)
    base = root / "dataset_AnomalyTrack"
    (base / "images").mkdir(parents=True)
    (base / "labels_masks").mkdir(parents=True)
    store = PredictionStore(root, METHOD)
    written = []
    for i in range(frames):
        fid = f"validation{i:04d}"
        image, label, scores = _frame(rng)
        Image.fromarray(image).save(base / "images" / f"{fid}.jpg", quality=90)
        Image.fromarray(label).save(base / "labels_masks" / f"{fid}_labels_semantic.png")
        written.append((fid, scores))
    # with the input record `oodbench run` writes, so evaluate's stale-input check hashes every image
    split = get_split(SPLIT, root, check_count=False)
    for fid, scores in written:
        store.write_anomaly("AnomalyTrack-all", fid, scores, dtype="float16", input_digest=input_digest(split, fid))
    store.write_run_manifest("AnomalyTrack-all", {"method": METHOD, "plugin": {"distribution": "external"}})
    atomic_write_json(root / "oodbench_manifest.json",
                      {"synthetic": True, "generator": "benchmarks/bench_evaluate.py", "counts": {SPLIT: frames}})


def _time(code: str, *args: str) -> tuple[float, float, list[str]]:
    """(process wall s, in-process s, [the line before the last]) of ``python -c code args``."""
    t0 = time.perf_counter()
    # cwd outside any checkout: `python -c` puts the cwd first on sys.path, where a source tree's
    # oodbench/ would shadow the installed package
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True,
                         cwd=tempfile.gettempdir())
    wall = time.perf_counter() - t0
    lines = out.stdout.strip().splitlines()
    return wall, float(lines[-1]), lines[-2:-1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--root", default=None, help="reuse/keep the data here (default: a temporary folder)")
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root) if args.root else Path(tmp) / "data"
        if not (root / "dataset_AnomalyTrack").is_dir():
            t = time.perf_counter()
            make_split(root, args.frames)
            print(f"wrote {args.frames} frames of {W}x{H} under {root} in {time.perf_counter() - t:.1f} s",
                  file=sys.stderr)
        metrics_json = Path(tmp) / "metrics.json"
        rows = {"bare": [], "evaluate": []}
        for _ in range(args.repeats):           # interleaved, so machine load affects both alike
            rows["bare"].append(_time(_BARE, str(root), METHOD))
            rows["evaluate"].append(_time(_EVALUATE, str(root), METHOD, str(metrics_json)))
        metrics = json.loads(metrics_json.read_text())[0]["metrics"]  # --json: a list of records
        torch_imported = any(extra == ["True"] for _, _, extra in rows["evaluate"])

    med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v)) for k, v in rows.items()}
    result = {
        "frames": args.frames, "size": f"{W}x{H}", "repeats": args.repeats,
        "bare_wall_s": med["bare"][0], "bare_work_s": med["bare"][1],
        "evaluate_wall_s": med["evaluate"][0], "evaluate_work_s": med["evaluate"][1],
        "ratio_wall": med["evaluate"][0] / med["bare"][0], "ratio_work": med["evaluate"][1] / med["bare"][1],
        "evaluate_imported_torch": torch_imported,
        "metrics": {k: metrics[k] for k in ("auprc", "fpr95", "best_f1", "siou", "ppv", "f1_mean")},
    }
    print(f"{args.frames} AnomalyTrack-style frames {W}x{H}, median of {args.repeats} fresh processes\n")
    print("| pass | process wall s | in-process s |")
    print("|---|---|---|")
    print(f"| bare read (labels PNG + HDF5) | {result['bare_wall_s']:.2f} | {result['bare_work_s']:.2f} |")
    print(f"| oodbench evaluate | {result['evaluate_wall_s']:.2f} | {result['evaluate_work_s']:.2f} |")
    print(f"| **ratio** | **{result['ratio_wall']:.2f}x** | **{result['ratio_work']:.2f}x** |")
    print(f"\noodbench evaluate imported torch: {'yes' if torch_imported else 'no'}")
    print("metrics: " + ", ".join(f"{k}={v:.6g}" for k, v in result["metrics"].items()))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
