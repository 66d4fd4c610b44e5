"""Fishyscapes test-set submission: the container contract (``docs/benchmarks.md`` §4.2).

(Named ``fishyscapes_submission`` so it is not confused with the dataset adapter
:mod:`oodbench.datasets.fishyscapes`.)

The organisers run an Apptainer image as ``singularity run --nv --bind {tmp}:/output,{rgb}:/input
image.simg``; its ``%runscript`` must read every ``/input/DDDD_*.png`` and write
``/output/DDDD_anomaly.npy`` (per-pixel score, higher = anomalous, input resolution) and
``/output/DDDD_segmentation.npy`` (integer classes 0-19, 2-D, 1024x2048). Outputs are paired with
labels by the sorted DDDD prefix, so one missing output shifts every later frame: we never skip an
input (an unreadable one stops the run with an error naming it) and check the count at the end.

* ``oodbench fishyscapes-predict`` is the runscript's entry point (testable without Apptainer);
* ``oodbench fishyscapes-export`` writes the definition file, the runscript and the
  ``validation_performance.json`` entry (AP and FPR95 on the validation set, as fractions).
"""
from __future__ import annotations

import argparse
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from oodbench.cli_config import add_command, arg
from oodbench.cli_options import MethodOptions
from oodbench.errors import OodbenchError

from .atomic import atomic_path, atomic_write_json, atomic_write_text

__all__ = [
    "INPUT_PATTERN",
    "list_inputs",
    "predict_directory",
    "check_outputs",
    "write_container",
    "FishyscapesExportConfig",
    "FishyscapesPredictConfig",
    "add_fishyscapes_export_parser",
]

INPUT_PATTERN = re.compile(r"^(\d{4})_.*\.png$")
EXPECTED_SHAPE = (1024, 2048)


class ContainerContractError(OodbenchError, ValueError):
    """Inputs or outputs violate the Fishyscapes container contract."""


def list_inputs(input_dir: str | Path) -> list[tuple[str, Path]]:
    """``(DDDD, path)`` for every input, sorted by the integer DDDD prefix; duplicates are errors."""
    found: dict[int, Path] = {}
    for path in Path(input_dir).iterdir():
        m = INPUT_PATTERN.match(path.name)
        if not m:
            continue
        idx = int(m.group(1))
        if idx in found:
            raise ContainerContractError(f"two inputs share the prefix {m.group(1)}: {found[idx].name}, {path.name}")
        found[idx] = path
    if not found:
        raise ContainerContractError(f"no DDDD_*.png input in {input_dir}")
    return [(f"{i:04d}", found[i]) for i in sorted(found)]


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as exc:
        raise ContainerContractError(f"{path}: unreadable input image ({exc})") from exc


def predict_directory(method, input_dir: str | Path, output_dir: str | Path, device: str = "cpu",
                      progress: bool = True) -> int:
    """Write ``DDDD_anomaly.npy`` and ``DDDD_segmentation.npy`` for every input; returns the count."""
    import torch
    from tqdm.auto import tqdm

    from .preprocess import normaliser
    from .runner import predict_batch

    inputs = list_inputs(input_dir)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    method.to(device)
    normalise = normaliser(method, device)
    for dddd, path in tqdm(inputs, desc="fishyscapes", disable=not progress, unit="image"):
        rgb = _read_rgb(path)
        scores, classes = predict_batch(method, normalise, torch.from_numpy(np.ascontiguousarray(rgb))[None],
                                        torch.device(device))
        score, seg = scores[0], classes[0]
        if score.shape != rgb.shape[:2] or seg.shape != rgb.shape[:2]:
            raise ContainerContractError(f"{path}: outputs {score.shape}/{seg.shape} != input {rgb.shape[:2]}")
        for suffix, arr in (("anomaly", score.astype(np.float32)), ("segmentation", seg)):
            with atomic_path(out / f"{dddd}_{suffix}.npy") as tmp:
                np.save(tmp, arr)
    check_outputs(out, [d for d, _ in inputs], expected_shape=None)
    return len(inputs)


def check_outputs(output_dir: str | Path, prefixes: Sequence[str],
                  expected_shape: tuple[int, int] | None = EXPECTED_SHAPE) -> None:
    """The official CI checks plus completeness: one pair per input, 2-D, classes in [0, 20)."""
    out = Path(output_dir)
    problems = []
    for dddd in prefixes:
        for suffix in ("anomaly", "segmentation"):
            path = out / f"{dddd}_{suffix}.npy"
            if not path.is_file():
                problems.append(f"missing {path.name}")
                continue
            arr = np.load(path, allow_pickle=False)
            if arr.ndim != 2:
                problems.append(f"{path.name}: not 2-D ({arr.shape})")
            elif expected_shape is not None and arr.shape != expected_shape:
                problems.append(f"{path.name}: shape {arr.shape} != {expected_shape}")
            if suffix == "segmentation" and arr.size and (arr.min() < 0 or arr.max() >= 20):
                problems.append(f"{path.name}: classes outside [0, 20)")
            if suffix == "anomaly" and not np.isfinite(arr).all():
                problems.append(f"{path.name}: NaN or inf scores")
    extra = sorted({p.name.split("_")[0] for p in out.glob("*.npy")} - set(prefixes))
    if extra:
        problems.append(f"outputs without an input: {extra}")
    if problems:
        raise ContainerContractError("Fishyscapes output check failed:\n  " + "\n  ".join(problems))


DEF_TEMPLATE = """\
Bootstrap: docker
From: pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime

# Built by `oodbench fishyscapes-export`. Build with:  apptainer build oodbench.simg oodbench.def
# The organisers run:  singularity run --nv --bind OUT:/output,RGB:/input oodbench.simg

%files
    {wheel_src} /opt/oodbench/{wheel_name}
    runscript.sh /opt/oodbench/runscript.sh
{checkpoint_files}
%post
    pip install --no-cache-dir /opt/oodbench/{wheel_name}
    chmod 755 /opt/oodbench/runscript.sh

%runscript
    exec /opt/oodbench/runscript.sh "$@"
"""

RUNSCRIPT_TEMPLATE = """\
#!/bin/sh
# Fishyscapes container entry point: every /input/DDDD_*.png -> /output/DDDD_{{anomaly,segmentation}}.npy
set -e
exec oodbench fishyscapes-predict --method {method} {args} --input /input --output /output --device {device}
"""


def write_container(out_dir: str | Path, method: str, method_args: Sequence[str],
                    checkpoint: str | None, wheel: str | None, device: str = "cuda",
                    validation: dict[str, float] | None = None, state: str | None = None) -> dict[str, Path]:
    """Write the Apptainer definition, runscript and validation entry into ``out_dir``.

    ``checkpoint`` and a fitted ``state`` (``oodbench fit``) are copied beside the definition, built
    into the image under ``/opt/oodbench/`` and passed to the runscript's ``fishyscapes-predict``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    args = list(method_args)
    if checkpoint and state and Path(checkpoint).name == Path(state).name:
        raise ContainerContractError(f"--checkpoint {checkpoint} and --state {state} share the file name "
                                     f"{Path(state).name!r}; rename one (both go to /opt/oodbench/)")
    ckpt_files = ""
    for flag, path in (("--checkpoint", checkpoint), ("--state", state)):
        if not path:
            continue
        src = Path(path)
        if (out / src.name).resolve() != src.resolve():
            shutil.copy2(src, out / src.name)
        ckpt_files += f"    {src.name} /opt/oodbench/{src.name}\n"
        args += [flag, f"/opt/oodbench/{src.name}"]
    wheel_name = Path(wheel).name if wheel else "oodbench-*.whl"
    if wheel:
        shutil.copy2(wheel, out / wheel_name)
    files = {
        "definition": out / "oodbench.def",
        "runscript": out / "runscript.sh",
    }
    atomic_write_text(files["definition"], DEF_TEMPLATE.format(
        wheel_src=wheel_name, wheel_name=wheel_name, checkpoint_files=ckpt_files))
    atomic_write_text(files["runscript"], RUNSCRIPT_TEMPLATE.format(
        method=shlex.quote(method), args=shlex.join(args), device=shlex.quote(device)))
    files["runscript"].chmod(0o755)
    if validation is not None:
        files["validation"] = out / "validation_performance.json"
        atomic_write_json(files["validation"], validation)
    return files


def _validation_entry(results_dir: str, method: str) -> dict[str, Any]:
    """``{"ap": .., "fpr": ..}`` (fractions) from our result record on FS L&F val (and Static)."""
    from .results import load_results

    entry: dict[str, Any] = {}
    other: dict[str, str] = {}
    for r in load_results(results_dir):
        if r.method != method or r.dataset not in ("fishyscapes-laf-val", "fishyscapes-static-val"):
            continue
        if r.protocol != "fishyscapes":  # records of other protocols may sit beside it
            other.setdefault(r.dataset, r.protocol)
            continue
        if r.untrained:
            raise ContainerContractError(f"{r.dataset}: the result of {method} was scored with untrained weights")
        if r.edited:
            raise ContainerContractError(f"{r.dataset}: the result record of {method} was changed after oodbench "
                                         "wrote it (its digest no longer matches); rerun `oodbench evaluate`")
        if r.off_count:
            raise ContainerContractError(f"{r.dataset}: the result of {method} covers {r.num_frames} of the "
                                         f"{r.expected_frames} validation frames (--no-count-check)")
        key = "lostandfound" if r.dataset == "fishyscapes-laf-val" else "static"
        entry[key] = {"ap": r.metrics["auprc"], "fpr": r.metrics["fpr95"]}
    if not entry and other:
        dataset, protocol = next(iter(other.items()))
        raise ContainerContractError(
            f"{dataset}: result used protocol {protocol!r}; the Fishyscapes CI compares "
            "with the 'fishyscapes' protocol (bdlb calculate_metrics_perpixAP)")
    if not entry:
        raise ContainerContractError(f"no Fishyscapes validation result for {method} in {results_dir}")
    return entry


# ---------------------------------------------------------------------------------------------- CLI
def _container_method(args: argparse.Namespace, allow_untrained: bool = False):
    """The method, built and passed through the gate ``oodbench run`` uses (:func:`oodbench.runner.
    ready_method`): a fitted ``--state`` loaded and checked, untrained weights refused. ``export``
    calls it before writing anything, so what would only fail on the organisers' server fails here:
    a checkpoint that does not load, untrained weights, a method that needs ``oodbench fit``
    exported without ``--state``, or a state fitted for another method or other weights."""
    from .cli_support import build_method, method_kwargs
    from .runner import ready_method

    method = build_method(args.method, method_kwargs(args))
    ready_method(method, args.method, state=args.state, allow_untrained=allow_untrained)
    return method


def _cmd_predict(args: argparse.Namespace) -> int:
    method = _container_method(args, allow_untrained=args.allow_untrained)
    n = predict_directory(method, args.input, args.output, device=args.device, progress=not args.quiet)
    print(f"wrote {2 * n} files for {n} inputs to {args.output}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    _container_method(args)  # refuses before anything is written
    method_args = []
    if args.segmenter:
        method_args += ["--segmenter", args.segmenter]
    for p in args.param or ():
        method_args += ["--param", p]
    validation = {args.method: _validation_entry(args.results, args.method)} if args.results else None
    files = write_container(args.out, args.method, method_args, args.checkpoint, args.wheel,
                            device=args.device, validation=validation, state=args.state)
    for name, path in files.items():
        print(f"{name}: {path}")
    return 0


_QUIET = arg("no progress bars", flags=("-q", "--quiet"), action="store_true")


@dataclass(kw_only=True)
class FishyscapesExportConfig:
    """``oodbench fishyscapes-export``: the container definition and runscript for one method."""

    method: MethodOptions
    state: str | None = field(default=None, metadata=arg(
        "fitted state written by `oodbench fit`, built into the image (methods with requires_fit)"))
    device: str = field(default="cuda", metadata=arg("torch device the container predicts on"))
    quiet: bool = field(default=False, metadata=_QUIET)
    out: str = field(metadata=arg("directory for the definition and runscript"))
    wheel: str | None = field(default=None, metadata=arg("oodbench wheel to install in the image"))
    results: str | None = field(default=None, metadata=arg(
        "result records with fishyscapes-*-val results for validation_performance.json"))


@dataclass(kw_only=True)
class FishyscapesPredictConfig:
    """``oodbench fishyscapes-predict``: the container's runscript."""

    method: MethodOptions
    state: str | None = field(default=None, metadata=arg(
        "fitted state written by `oodbench fit` (methods with requires_fit)"))
    allow_untrained: bool = field(default=False, metadata=arg(
        "predict with a method without trained weights (refused otherwise: the server would score them)",
        action="store_true"))
    device: str = field(default="cpu", metadata=arg("torch device: cpu, cuda"))
    quiet: bool = field(default=False, metadata=_QUIET)
    input: str = field(metadata=arg("folder of DDDD_*.png images"))
    output: str = field(metadata=arg("folder for the *.npy score maps"))


def add_fishyscapes_export_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``fishyscapes-export`` and ``fishyscapes-predict`` (flags generated from their configs;
    the handlers read the same names)."""
    add_command(sub, "fishyscapes-export", FishyscapesExportConfig, _cmd_export,
                help="write an Apptainer definition for the Fishyscapes test server")
    add_command(sub, "fishyscapes-predict", FishyscapesPredictConfig, _cmd_predict,
                help="the container runscript: /input/DDDD_*.png -> /output/*.npy")
