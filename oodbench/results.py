"""Result records: one JSON file per (method, split, protocol, FPR95 rule), the only input of leaderboards.

A record holds the metrics with their protocol, its version and FPR95 rule, and everything needed to
tell two numbers apart later: oodbench version and git commit, method hyperparameters, checkpoint
sha256, whether the weights were trained (``untrained``), the split a selected checkpoint was chosen
on (``selected_on``: its numbers on that split are not held-out), which distribution provided the method
(plugins), a fingerprint of the evaluated data (frame ids and decoded-label hashes), whether the
data was synthetic, how many frames the complete split has (``expected_frames``: a record of a partial
copy, ``--no-count-check``, says so), device and wall time. Records may carry frame-bootstrap intervals of their metrics
(``ci``: ``{metric: [lo, hi]}``, with ``bootstrap``: ``{"n", "level", "seed", "unit", ...}``) and the
seed the method's weights were trained with (``training_seed``; leaderboards average records that
differ only in it).

Provenance (version, commit, device, time) is stamped once, by :meth:`Result.from_evaluation`,
when a record is created; a record read back is exactly what was written (read -> write is
byte-identical), so a leaderboard never shows the reader's machine as the writer's. The first write
adds ``digest``, the sha256 of the content: a record changed afterwards (a number edited by hand) is
:attr:`Result.edited`, and leaderboards mark it.

File names: ``<method>__<dataset>__<protocol>.json``, or ``...__<protocol>-<fpr_rule>.json`` when the
FPR95 rule is not the protocol's own (only ``exact`` accepts another rule), e.g.
``energy__road-anomaly__fishyscapes.json``, ``energy__road-anomaly__exact-nearest_recall.json``.
Records written before the protocol was part of the name (``<method>__<dataset>.json``) still load.
"""
from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import math
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oodbench.errors import OodbenchError

from .atomic import atomic_write_json, json_sha256

if TYPE_CHECKING:
    from .evaluate import EvaluationOutput

__all__ = ["Result", "RecordError", "DataFingerprint", "save_result", "load_results", "result_filename",
           "validate_record", "default_fpr_rule", "git_commit", "REQUIRED_FIELDS"]

#: 2: ``fpr_rule`` and ``untrained`` fields; the protocol in the file name
#: 3: ``selected_on``, ``ci``, ``bootstrap`` and ``training_seed`` fields
#: 4: ``name`` (the run name, ``oodbench run --name``) and ``fitted_state_sha256`` fields
#: 5: ``expected_frames`` (a record of a partial split copy is told apart from a full one) and
#:    ``digest`` (a record changed after it was written is told apart from one oodbench wrote)
SCHEMA_VERSION = 5


class DataFingerprint:
    """sha256 over ``(frame id, sha256 of decoded label bytes)`` in evaluation order.

    Per-frame digests are kept (32 bytes a frame) so shards can be merged in rank order
    (``state_dict`` / ``from_state`` / ``merge``, like the metric accumulators).
    """

    def __init__(self) -> None:
        self.frames: list[tuple[str, str]] = []

    def update(self, frame_id: str, label: Any) -> None:
        import numpy as np

        arr = np.ascontiguousarray(label)
        h = hashlib.sha256(str(arr.shape).encode())
        h.update(arr.tobytes())
        self.frames.append((frame_id, h.hexdigest()))

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def merge(self, other: "DataFingerprint") -> "DataFingerprint":
        self.frames.extend(other.frames)
        return self

    def state_dict(self) -> dict:
        return {"frames": list(self.frames)}

    @classmethod
    def from_state(cls, state: dict) -> "DataFingerprint":
        fp = cls()
        fp.frames = [tuple(x) for x in state["frames"]]
        return fp

    @classmethod
    def merge_states(cls, states: list[dict]) -> "DataFingerprint":
        """Merge state dicts (e.g. gathered from all ranks) in list order, like the accumulators."""
        merged = cls()
        for state in states:
            merged.merge(cls.from_state(state))
        return merged

    def hexdigest(self) -> str:
        h = hashlib.sha256()
        for fid, digest in self.frames:
            h.update(fid.encode() + b"\0" + digest.encode())
        return h.hexdigest()


#: the record's own fields and the types a stored value may have (``None`` where listed)
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "method": (str,), "dataset": (str,), "benchmark": (str,), "protocol": (str,),
    "protocol_version": (str,), "fpr_rule": (str,), "metrics": (dict,), "num_frames": (int,),
    "synthetic": (bool,), "untrained": (bool,), "selected_on": (str, type(None)), "hparams": (dict,), "checkpoint_sha256": (str, type(None)),
    "plugin": (dict,), "data_fingerprint": (str,), "data_root": (str,), "predictions": (str,),
    "device": (str,), "wall_time_s": (int, float, type(None)), "oodbench_version": (str,),
    "git_commit": (str, type(None)), "created": (str,), "notes": (dict,), "schema_version": (int,),
    "ci": (dict,), "bootstrap": (dict, type(None)), "training_seed": (int, type(None)),
    "name": (str,), "fitted_state_sha256": (str, type(None)), "expected_frames": (int, type(None)),
    "digest": (str,),
}
#: fields a record cannot do without (the others have defaults, e.g. in records of older versions)
REQUIRED_FIELDS = ("method", "dataset", "benchmark", "protocol", "protocol_version", "metrics", "num_frames")


class RecordError(OodbenchError, ValueError):
    """A result record file is unreadable or invalid; the message names the file and the field."""


@dataclass
class Result:
    """One evaluation result (method x split x protocol).

    Build new records with :meth:`from_evaluation` (which stamps provenance); the plain
    constructor and :meth:`from_dict` store exactly the values they are given.
    """

    method: str
    dataset: str
    benchmark: str
    protocol: str
    protocol_version: str
    metrics: dict[str, float]
    num_frames: int
    fpr_rule: str = ""
    synthetic: bool = False
    untrained: bool = False
    #: the split the evaluated checkpoint was selected on (``best-<split>-*.pth``), else ``None``
    selected_on: str | None = None
    hparams: dict[str, Any] = field(default_factory=dict)
    checkpoint_sha256: str | None = None
    plugin: dict[str, str] = field(default_factory=dict)
    data_fingerprint: str = ""
    data_root: str = ""
    predictions: str = ""
    device: str = ""
    wall_time_s: float | None = None
    oodbench_version: str = ""
    git_commit: str | None = None
    created: str = ""
    notes: dict[str, Any] = field(default_factory=dict)
    #: frame-bootstrap intervals ``{metric: [lo, hi]}`` (fractions, like ``metrics``); empty: none
    ci: dict[str, list[float | None]] = field(default_factory=dict)
    #: how ``ci`` was computed (``n``, ``level``, ``seed``, ``unit``, notes); ``None`` without ``ci``
    bootstrap: dict[str, Any] | None = None
    #: seed of the training run that produced the weights (from the checkpoint), if known
    training_seed: int | None = None
    schema_version: int = SCHEMA_VERSION
    #: run name (``oodbench run --name``): the store folder, file name and leaderboard row; "" = ``method``
    name: str = ""
    #: sha256 of the fitted-state file the method loaded (``oodbench run --state``)
    fitted_state_sha256: str | None = None
    #: frames of the complete split (the official count, or the synthetic benchmark manifest's);
    #: ``None``: unknown (records of older versions, splits without a fixed count). A record whose
    #: ``num_frames`` differs was evaluated on a partial or altered copy (``--no-count-check``)
    expected_frames: int | None = None
    #: sha256 of every other field (:meth:`content_digest`), set when the record is created
    #: (:meth:`from_evaluation`, or by :func:`save_result` for one built otherwise) and kept after;
    #: a record whose content no longer matches was changed after oodbench wrote it (:attr:`edited`).
    #: "": none (built in memory, records of older versions)
    digest: str = ""

    @classmethod
    def from_evaluation(
        cls,
        ev: "EvaluationOutput",
        split: Any,
        *,
        method: str,
        hparams: dict[str, Any] | None = None,
        checkpoint_sha256: str | None = None,
        plugin: dict[str, str] | None = None,
        untrained: bool = False,
        predictions: str | os.PathLike = "",
        device: str | None = None,
        wall_time_s: float | None = None,
        notes: dict[str, Any] | None = None,
        selected_on: str | None = None,
        training_seed: int | None = None,
        name: str | None = None,
        fitted_state_sha256: str | None = None,
    ) -> "Result":
        """The record of one evaluation, with provenance stamped now (the one place records are made).

        Args:
            ev: the :class:`~oodbench.evaluate.EvaluationOutput` of ``split``.
            split: the evaluated split (name, benchmark, root, synthetic, ``expected()`` frame count).
            method: registry name of the method.
            name: run name when it differs from ``method`` (``oodbench run --name``).
            fitted_state_sha256: sha256 of the fitted state the method loaded.
            untrained: the method scored with random or unfitted weights (``--allow-untrained``).
            device: what computed the predictions (default: this host's processor).
            wall_time_s: default: the evaluation's own wall time.
            notes: default: the evaluation's notes.
            selected_on: the split the method's checkpoint was selected on (``method.selected_on``).
            training_seed: the seed the method's checkpoint was trained with (``None``: unknown).
        """
        from . import __version__

        record = cls(
            method=method, dataset=split.name, benchmark=split.benchmark, protocol=ev.protocol,
            protocol_version=ev.protocol_version, metrics=dict(ev.metrics), num_frames=int(ev.num_frames),
            fpr_rule=ev.fpr_rule, synthetic=bool(split.synthetic), untrained=bool(untrained),
            selected_on=selected_on,
            hparams=dict(hparams or {}), checkpoint_sha256=checkpoint_sha256, plugin=dict(plugin or {}),
            data_fingerprint=ev.data_fingerprint, data_root=str(split.root), predictions=str(predictions),
            device=device or platform.processor() or platform.machine(),
            wall_time_s=round(ev.wall_time_s if wall_time_s is None else wall_time_s, 3),
            oodbench_version=__version__, git_commit=git_commit(),
            created=_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
            notes=dict(ev.notes if notes is None else notes),
            ci={k: list(v) for k, v in (getattr(ev, "ci", None) or {}).items()},
            bootstrap=dict(ev.bootstrap) if getattr(ev, "bootstrap", None) else None,
            training_seed=None if training_seed is None else int(training_seed),
            name="" if name in (None, method) else str(name), fitted_state_sha256=fitted_state_sha256,
            expected_frames=split.expected(),
        )
        record.digest = record.content_digest()
        return record

    @property
    def effective_fpr_rule(self) -> str:
        """The FPR95 rule of the numbers (records of older versions: from the metrics or the protocol)."""
        return self.fpr_rule or str(self.metrics.get("fpr_rule") or default_fpr_rule(self.protocol) or "")

    def content_digest(self) -> str:
        """sha256 of the record's canonical JSON (sorted keys, compact) without ``digest``: what it
        holds, independent of formatting."""
        return json_sha256({k: v for k, v in self.to_dict().items() if k != "digest"})

    @property
    def edited(self) -> bool:
        """Whether the content changed after oodbench wrote the record (its ``digest`` no longer
        matches): a hand-edited number is marked wherever it is shown, never taken as measured.
        Programmatic changes of a loaded record must clear ``digest`` (``replace(r, ..., digest="")``)."""
        return bool(self.digest) and self.digest != self.content_digest()

    @property
    def off_count(self) -> bool:
        """Whether the evaluated frames are not the complete split (``num_frames != expected_frames``):
        such a number is not the benchmark's and is marked wherever it is shown."""
        return self.expected_frames is not None and self.num_frames != self.expected_frames

    @property
    def run_name(self) -> str:
        """The name the run was stored and is shown under: ``name``, or ``method`` without one."""
        return self.name or self.method

    @property
    def identity(self) -> tuple[str, str, str, str]:
        """``(run name, dataset, protocol, FPR95 rule)``: two records with one identity are one result."""
        return (self.run_name, self.dataset, self.protocol, self.effective_fpr_rule)

    @property
    def filename(self) -> str:
        return result_filename(self.run_name, self.dataset, self.protocol, self.effective_fpr_rule)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any, source: str = "result record") -> "Result":
        """Validate a stored record and return it unchanged (:class:`RecordError` names ``source``)."""
        validate_record(d, source)
        return cls(**d)


def validate_record(d: Any, source: str = "result record") -> None:
    """Raise :class:`RecordError` unless ``d`` is a well-formed record of this or an older schema.

    Every field has its type (booleans are not numbers); the leaderboard metrics are fractions in
    [0, 1] (percentages such as 99.5 and infinities are refused) or NaN, which the evaluator writes
    for an undefined value (e.g. sIoU without any component; shown as "-"); other metric values are
    numbers or strings. Unknown fields are refused (a misspelt field must not silently fall back to
    its default).
    """
    from .leaderboard import METRIC_COLUMNS

    def bad(what: str, why: str) -> RecordError:
        return RecordError(f"{source}: field {what!r} {why}")

    if not isinstance(d, dict):
        raise RecordError(f"{source}: not a result record (a JSON {type(d).__name__}, not an object)")
    version = d.get("schema_version", SCHEMA_VERSION)
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise RecordError(f"{source}: written by a newer oodbench (record schema {version}, this one reads "
                          f"up to {SCHEMA_VERSION}); upgrade oodbench")
    for key in d:
        if key not in _FIELD_TYPES:
            raise bad(key, "is not a field of a result record")
    for key in REQUIRED_FIELDS:
        if key not in d:
            raise bad(key, "is missing")
    for key, value in d.items():
        types = _FIELD_TYPES[key]
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            want = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise bad(key, f"must be {want}, got {json.dumps(value)[:40]}")
    for key in ("method", "dataset", "protocol"):
        if not d[key]:
            raise bad(key, "is empty")
    if d["num_frames"] < 0:
        raise bad("num_frames", f"must be >= 0, got {d['num_frames']}")
    if d.get("expected_frames") is not None and d["expected_frames"] < 1:
        raise bad("expected_frames", f"must be >= 1 or null, got {d['expected_frames']}")
    for key, value in d["metrics"].items():
        where = f"metrics.{key}"
        if key in METRIC_COLUMNS:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise bad(where, f"must be a number, got {json.dumps(value)[:40]}")
            if not math.isnan(value) and not 0.0 <= value <= 1.0:
                raise bad(where, f"must be a fraction in [0, 1], got {value!r}")
        elif value is not None and (isinstance(value, bool) or not isinstance(value, (int, float, str))):
            raise bad(where, f"must be a number or a string, got {json.dumps(value)[:40]}")
    _validate_intervals(d, bad)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _validate_intervals(d: dict, bad: Any) -> None:
    """``ci`` holds ``[lo, hi]`` pairs (numbers or null, ``lo <= hi``; leaderboard metrics in [0, 1])
    of reported metrics, and comes with its ``bootstrap`` description."""
    from .leaderboard import METRIC_COLUMNS

    ci, spec = d.get("ci") or {}, d.get("bootstrap")
    if ci and spec is None:
        raise bad("bootstrap", "is missing: a record with 'ci' must say how the intervals were computed")
    for key, pair in ci.items():
        where = f"ci.{key}"
        if not isinstance(pair, list) or len(pair) != 2 or not all(v is None or _is_number(v) for v in pair):
            raise bad(where, f"must be [lo, hi] (numbers or null), got {json.dumps(pair)[:40]}")
        if key not in d["metrics"]:
            raise bad(where, "is an interval of a metric the record does not report")
        lo, hi = pair
        if lo is not None and hi is not None and not lo <= hi:
            raise bad(where, f"must have lo <= hi, got {pair}")
        if key in METRIC_COLUMNS and any(v is not None and not 0.0 <= v <= 1.0 for v in pair):
            raise bad(where, f"must be fractions in [0, 1], got {pair}")
    if spec is not None:
        for key, ok, want in (("n", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                               "a positive integer"),
                              ("level", lambda v: _is_number(v) and 0.0 < v < 1.0, "a number in (0, 1)"),
                              ("seed", lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
                              ("unit", lambda v: isinstance(v, str) and bool(v), "a non-empty string")):
            if key not in spec:
                raise bad(f"bootstrap.{key}", "is missing")
            if not ok(spec[key]):
                raise bad(f"bootstrap.{key}", f"must be {want}, got {json.dumps(spec[key])[:40]}")


@functools.lru_cache(maxsize=None)
def default_fpr_rule(protocol: str) -> str | None:
    """The FPR95 rule ``protocol`` uses when none is asked for (``None`` for protocols oodbench lacks)."""
    from . import metrics as M

    if protocol not in M.PROTOCOLS:
        return None
    return getattr(M.build_protocol(protocol), "fpr_rule", None)


def result_filename(method: str, dataset: str, protocol: str, fpr_rule: str | None = None) -> str:
    """``<method>__<dataset>__<protocol>[-<fpr_rule>].json``; the rule only where it is not the protocol's own."""
    stem = f"{method}__{dataset}__{protocol}"
    if fpr_rule and fpr_rule != default_fpr_rule(protocol):
        stem += f"-{fpr_rule}"
    return f"{stem}.json"


def _is_record_file(path: Path) -> bool:
    """Top-level ``*.json`` files, except hidden ones (``.tmp-*`` left by an interrupted atomic write)."""
    return path.is_file() and path.suffix == ".json" and not path.name.startswith(".")


def _read_record(path: Path) -> Result:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecordError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        d = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError(f"{path}: not valid JSON ({exc})") from exc
    return Result.from_dict(d, source=str(path))


def save_result(result: Result, results_dir: str | os.PathLike) -> Path:
    """Atomically write ``result`` as ``<results_dir>/<result.filename>``.

    A record without a ``digest`` gets one (:meth:`Result.content_digest`); a record that has one
    keeps it, so a loaded record is written back byte for byte and an edited one stays marked.
    A record of the same identity under the old name (``<method>__<dataset>.json``, no protocol)
    is removed, so the new result replaces it instead of doubling the row.
    """
    folder = Path(results_dir)
    path = folder / result.filename
    if not result.digest:
        result = replace(result, digest=result.content_digest())
    atomic_write_json(path, result.to_dict())
    legacy = folder / f"{result.run_name}__{result.dataset}.json"
    if legacy != path and legacy.is_file():
        try:
            same = _read_record(legacy).identity == result.identity
        except RecordError:
            same = False
        if same:
            legacy.unlink()
    return path


def load_results(results_dir: str | os.PathLike) -> list[Result]:
    """The records the folder holds at its top level, validated, sorted by dataset, protocol, method.

    Sub-folders (backups) and hidden files (``.tmp-*`` of an interrupted write) are not read. Any
    other ``*.json`` must be a valid record, and no two files may hold the same identity
    (:attr:`Result.identity`); otherwise :class:`RecordError` names the file(s).

    Raises:
        FileNotFoundError: ``results_dir`` does not exist.
    """
    folder = Path(results_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"results folder {folder} does not exist" if not folder.exists()
                                else f"results folder {folder} is not a folder")
    out: list[Result] = []
    seen: dict[tuple[str, str, str, str], Path] = {}
    for path in sorted(p for p in folder.iterdir() if _is_record_file(p)):
        r = _read_record(path)
        if r.identity in seen:
            raise RecordError(f"{seen[r.identity]} and {path} hold the same result "
                              f"(method, dataset, protocol, FPR95 rule = {r.identity}); keep one")
        seen[r.identity] = path
        out.append(r)
    return sorted(out, key=lambda r: (r.dataset, r.protocol, r.effective_fpr_rule, r.run_name))


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """Commit of oodbench's own source checkout, or ``None`` (wheels, installed copies).

    Only when this package is the ``oodbench/`` folder at the top of a git work tree whose
    ``pyproject.toml`` names the project ``oodbench``: an installed copy inside some other
    repository (a virtualenv in a project, ``.tox`` in the checkout) must not report that
    repository's commit. ``-dirty`` is appended when tracked files differ from the commit.
    """
    here = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(here), *args], capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if not top or Path(top).resolve() / "oodbench" != here or not _names_oodbench(Path(top) / "pyproject.toml"):
        return None
    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return commit + ("-dirty" if dirty else "")


def _names_oodbench(pyproject: Path) -> bool:
    """Whether ``pyproject`` declares ``[project] name = "oodbench"``."""
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return False
    try:
        import tomllib
    except ImportError:  # Python 3.10: the [project] table's own name line
        import re

        table = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
        return bool(table and re.search(r"^name\s*=\s*[\"']oodbench[\"']\s*$", table.group(1), re.M))
    try:
        return tomllib.loads(text).get("project", {}).get("name") == "oodbench"
    except ValueError:
        return False
