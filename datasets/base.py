"""Base class and registry for dataset splits.

A :class:`Split` knows its official on-disk layout under a data root, the official frame count,
its evaluation protocol and (for SMIYC) the persistence name used for prediction files. It lists
frame ids without reading pixels, and loads one :class:`~oodbench.contracts.Frame` at a time with
labels mapped to the 0/1/255 contract -- or, for evaluation, only the labels
(:meth:`Split.load_labels`, which never decodes the image).

What the evaluator needs to know about a split is declared here, never looked up by name:
:attr:`Split.semantic_mapping` (how Cityscapes train ids map to the split's semantic classes) and
:meth:`Split.calibration_group` (the frame group open-set calibration is done per, e.g. the
StreetHazards town) and :meth:`Split.input_files` (the files a frame's image is decoded from, whose
bytes stored predictions are tied to, :func:`input_digest`).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Mapping, Sequence

from oodbench.contracts import Frame
from oodbench.errors import OodbenchError
from oodbench.registry import PluginValidationError, Registry

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = [
    "DATASETS",
    "DATA_MANIFEST",
    "DataLayoutError",
    "FrameLabels",
    "Split",
    "get_split",
    "find_available",
    "input_digest",
    "read_manifest",
    "register_split",
    "require_available",
    "resolve_data_root",
    "resolve_splits",
]

DATA_ROOT_ENV = "OODBENCH_DATA"
#: optional file at the top of a data root, written by the synthetic benchmark generator:
#: ``{"synthetic": true, "generator": "...", "counts": {"<split name>": n, ...}}``.
DATA_MANIFEST = "oodbench_manifest.json"


class DataLayoutError(OodbenchError, FileNotFoundError):
    """The data on disk does not match the expected layout; the message names what and where."""


@dataclass
class FrameLabels:
    """One frame's ground truth without its image (what evaluation reads: :meth:`Split.load_labels`).

    Attributes:
        frame_id: as in :class:`~oodbench.contracts.Frame`.
        label: anomaly labels ``uint8 [H, W]`` in {0, 1, 255}, or ``None`` when hidden.
        semantic: closed-set train ids ``uint8 [H, W]`` (255 ignore), when the benchmark has them.
        meta: the same adapter facts as :attr:`Frame.meta <oodbench.contracts.Frame.meta>`.
    """

    frame_id: str
    label: "np.ndarray | None" = None
    semantic: "np.ndarray | None" = None
    meta: dict[str, Any] = field(default_factory=dict)


def input_digest(split: "Split", frame_id: str) -> str | None:
    """sha256 over the bytes of :meth:`Split.input_files` (each prefixed by its length; names and
    locations do not count, so a copied data root matches), or ``None`` when the split declares none.

    Raises :class:`DataLayoutError` naming a file that cannot be read.
    """
    import hashlib

    files = split.input_files(frame_id)
    if not files:
        return None
    h = hashlib.sha256()
    for path in files:
        try:
            with open(path, "rb") as fh:
                h.update(os.fstat(fh.fileno()).st_size.to_bytes(8, "little"))
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        except OSError as exc:
            raise DataLayoutError(f"{split.name}: cannot read input file {path} ({exc.strerror or exc})") from exc
    return h.hexdigest()


class Split:
    """A labelled (or label-hidden) evaluation split in its official layout.

    Subclasses set the class attributes and implement :meth:`frame_ids` and :meth:`load`; they
    override :meth:`load_labels` when labels can be read without decoding the image (every
    built-in adapter does), :meth:`calibration_group` when open-set calibration is per group, and
    :meth:`input_files` so predictions of images that changed since a run are caught (every built-in
    adapter does; without it they are not checked).

    Attributes:
        name: CLI name, e.g. ``"fishyscapes-laf-val"``.
        benchmark: benchmark family for leaderboard grouping ("SMIYC", "Fishyscapes", ...).
        protocol: default metric protocol name (see :mod:`oodbench.metrics`).
        expected_count: official number of frames (checked unless ``check_count=False``).
        persistence_name: SMIYC key under ``anomaly_p/<method>/`` (``None``: use ``name``).
        labels_public: whether ground truth ships with the data.
        component_metrics: SMIYC SegEval config name, or ``None``.
        num_classes: closed-set classes for semantic labels (``None`` if none).
        score_dtype: dtype predictions are stored in (``"float16"`` for SMIYC splits).
        semantic_mapping: Cityscapes train id (the ``cityscapes19`` label space of semantic
            predictions) -> this split's semantic class, or ``None`` where not applicable.
        layouts: the on-disk layouts the constructor's ``layout=`` keyword chooses between
            (e.g. ``("official", "preprocessed")``); empty when the split has one layout and its
            constructor takes no ``layout``.
    """

    name: ClassVar[str] = ""
    benchmark: ClassVar[str] = ""
    protocol: ClassVar[str] = "exact"
    expected_count: ClassVar[int | None] = None
    persistence_name: ClassVar[str | None] = None
    labels_public: ClassVar[bool] = True
    component_metrics: ClassVar[str | None] = None
    num_classes: ClassVar[int | None] = None
    score_dtype: ClassVar[str] = "float32"
    semantic_mapping: ClassVar[Mapping[int, int] | None] = None
    layouts: ClassVar[tuple[str, ...]] = ()

    def __init__(self, root: str | os.PathLike, check_count: bool = True) -> None:
        self.root = Path(root)
        self.check_count = check_count
        self._manifest: dict[str, Any] | None = None

    # -- to implement ---------------------------------------------------------------------
    def frame_ids(self) -> list[str]:
        """Sorted (or officially ordered) frame ids; raises :class:`DataLayoutError`."""
        raise NotImplementedError

    def load(self, frame_id: str) -> Frame:
        """Load one frame (image, labels mapped to 0/1/255, optional semantic labels)."""
        raise NotImplementedError

    # -- may override ---------------------------------------------------------------------
    def load_labels(self, frame_id: str) -> FrameLabels:
        """The frame's labels, semantic labels and meta, without the image.

        Same labels, checks and errors as :meth:`load` except those that need decoded image
        pixels. This default calls :meth:`load` and drops the image; the built-in adapters read
        only the label file (and the image's header, for the size check).
        """
        frame = self.load(frame_id)
        return FrameLabels(frame.frame_id, frame.label, frame.semantic, frame.meta)

    def input_files(self, frame_id: str) -> tuple[Path, ...]:
        """The files the frame's image is decoded from: a stored prediction is valid for exactly their
        bytes (:func:`input_digest`; ``run`` recomputes and ``evaluate`` refuses predictions of files
        that changed since). Default ``()``: unknown, and predictions are not checked against the data."""
        return ()

    def calibration_group(self, frame: Frame | FrameLabels) -> str:
        """The group of frames that open-set metrics calibrate thresholds over (default ``"all"``)."""
        return "all"

    @classmethod
    def detect(cls, root: str | os.PathLike, **kwargs: Any) -> str | None:
        """Return ``None`` if the split's data is present under ``root``, else the reason it is not.

        Only lists directories (``frame_ids()``), never decodes pixels, so it is cheap enough for
        ``oodbench list datasets`` and ``--dataset all``. ``kwargs`` go to the constructor
        (e.g. ``check_count=False``).
        """
        try:
            cls(root, **kwargs).frame_ids()
        except (DataLayoutError, OSError) as exc:
            return str(exc)
        return None

    # -- shared ---------------------------------------------------------------------------
    @property
    def key(self) -> str:
        """Folder name under ``anomaly_p/<method>/`` for this split's predictions."""
        return self.persistence_name or self.name

    def __len__(self) -> int:
        return len(self.frame_ids())

    def __iter__(self) -> Iterator[Frame]:
        for fid in self.frame_ids():
            yield self.load(fid)

    @property
    def manifest(self) -> dict[str, Any]:
        """The data root's ``oodbench_manifest.json`` (``{}`` when absent); read once per split."""
        if self._manifest is None:
            self._manifest = read_manifest(self.root)
        return self._manifest

    @property
    def synthetic(self) -> bool:
        """Whether the data root is a synthetic benchmark (its manifest says ``"synthetic": true``)."""
        return bool(self.manifest.get("synthetic", False))

    def expected(self) -> int | None:
        """Frame count this split must have under this root.

        The manifest's ``counts[<name>]`` when the root has one listing this split (synthetic
        benchmarks are smaller than the official releases), else the official ``expected_count``.
        """
        counts = self.manifest.get("counts", {})
        if self.name in counts:
            return counts[self.name]
        return self.expected_count

    def _check_count(self, ids: list[str], where: Path) -> list[str]:
        """Enforce :meth:`expected` (unless ``check_count=False``); an empty split is always an error."""
        if not ids:
            raise DataLayoutError(f"{self.name}: no frames found under {where}")
        expected = self.expected()
        if self.check_count and expected is not None and len(ids) != expected:
            source = f" (from {self.root / DATA_MANIFEST})" if self.name in self.manifest.get("counts", {}) else ""
            raise DataLayoutError(
                f"{self.name}: expected {expected} frames{source} under {where}, found {len(ids)} "
                "(pass check_count=False / --no-count-check to evaluate a partial copy)"
            )
        return ids

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, root={str(self.root)!r})"


def read_manifest(root: str | os.PathLike) -> dict[str, Any]:
    """Read and validate ``<root>/oodbench_manifest.json``; ``{}`` when the file does not exist.

    Raises:
        DataLayoutError: naming the file, when it is not valid JSON or has the wrong shape.
    """
    path = Path(root) / DATA_MANIFEST
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataLayoutError(f"{path}: cannot read the data manifest: {exc}") from exc
    if not isinstance(doc, dict):
        raise DataLayoutError(f"{path}: the data manifest must be a JSON object, got {type(doc).__name__}")
    counts = doc.get("counts", {})
    if not isinstance(counts, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
        for k, v in counts.items()
    ):
        raise DataLayoutError(
            f"{path}: 'counts' must map split names to non-negative integers, got {counts!r}"
        )
    if not isinstance(doc.get("synthetic", False), bool):
        raise DataLayoutError(f"{path}: 'synthetic' must be true or false, got {doc['synthetic']!r}")
    return doc


def _validate_split(name: str, obj: object) -> None:
    if not (isinstance(obj, type) and issubclass(obj, Split)):
        raise PluginValidationError(f"dataset plugin {name!r} must be a subclass of oodbench.datasets.Split")
    for attr in ("frame_ids", "load"):
        if getattr(obj, attr) is getattr(Split, attr):
            raise PluginValidationError(f"dataset plugin {name!r} does not implement {attr}()")


DATASETS = Registry("dataset", entry_point_group="oodbench.datasets", validator=_validate_split)


def register_split(cls: type[Split]) -> type[Split]:
    """Class decorator: register a :class:`Split` subclass under ``cls.name``."""
    DATASETS.register(cls.name, cls)
    return cls


def resolve_data_root(data_root: str | os.PathLike | None) -> Path:
    """``data_root`` if given, else ``$OODBENCH_DATA``; raises a clear error when neither is set."""
    if data_root is None:
        env = os.environ.get(DATA_ROOT_ENV)
        if not env:
            raise DataLayoutError(
                f"no data root: pass --data-root DIR or set {DATA_ROOT_ENV} "
                "(try `oodbench synth --out DIR` for a synthetic benchmark in the official layouts)"
            )
        data_root = env
    root = Path(data_root).expanduser()
    if not root.is_dir():
        raise DataLayoutError(f"data root {root} does not exist or is not a directory")
    return root


def get_split(name: str, data_root: str | os.PathLike | None = None, **kwargs) -> Split:
    """Build split ``name`` on ``data_root`` (or ``$OODBENCH_DATA``)."""
    cls = DATASETS.get(name).obj
    return cls(resolve_data_root(data_root), **kwargs)


def _split_kwargs(cls: type[Split], layout: str | None, split_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor keywords for ``cls``: ``split_kwargs``, plus ``layout`` when ``cls`` declares layouts."""
    kwargs = dict(split_kwargs)
    if layout is not None and cls.layouts:
        kwargs["layout"] = layout
    return kwargs


def find_available(
    data_root: str | os.PathLike | None, labelled_only: bool = True, *, layout: str | None = None,
    **split_kwargs: Any,
) -> tuple[list[str], dict[str, str]]:
    """Which registered splits are present under the root.

    Args:
        data_root: the data root (``None``: ``$OODBENCH_DATA``).
        labelled_only: skip splits whose labels are hidden (SMIYC test splits).
        layout: passed to the splits that declare :attr:`Split.layouts`, ignored by the others.
        split_kwargs: passed to each split's constructor (e.g. ``check_count=False``).

    Returns:
        ``(found, missing)`` where ``missing`` maps each absent split to the reason.
    """
    root = resolve_data_root(data_root)
    found: list[str] = []
    missing: dict[str, str] = {}
    for name in DATASETS.names():
        cls = DATASETS.get(name).obj
        if labelled_only and not cls.labels_public:
            continue
        reason = cls.detect(root, **_split_kwargs(cls, layout, split_kwargs))
        if reason is None:
            found.append(name)
        else:
            missing[name] = reason
    return found, missing


def resolve_splits(
    names: Sequence[str], data_root: str | os.PathLike | None, *, check_count: bool = True,
    labelled_only: bool = True, layout: str | None = None,
) -> tuple[list[Split], dict[str, str]]:
    """Split objects for the CLI's ``--dataset`` values; ``"all"`` = every split found.

    Args:
        names: split names and/or ``"all"`` (duplicates are built once, in first-seen order).
        data_root: the data root (``None``: ``$OODBENCH_DATA``).
        check_count: enforce the official frame counts.
        labelled_only: whether ``"all"`` skips splits whose labels are hidden.
        layout: ``"official"`` / ``"preprocessed"`` for the splits that declare :attr:`Split.layouts`.

    Returns:
        ``(splits, skipped)``: ``skipped`` maps each split ``"all"`` left out to the reason it is
        not under the root (for the caller to report).

    Raises:
        DataLayoutError: no data root, or ``"all"`` found no split.
        oodbench.registry.RegistryError: an unknown split name (the message lists the valid ones).
    """
    root = resolve_data_root(data_root)
    wanted: list[str] = []
    skipped: dict[str, str] = {}
    for name in names:
        if name == "all":
            found, missing = find_available(root, labelled_only, layout=layout, check_count=check_count)
            skipped.update(missing)
            if not found:
                raise DataLayoutError(
                    f"no labelled split found under {root}; expected the official layouts "
                    "(see `oodbench list datasets --data-root DIR` and the README's table)"
                )
            wanted += found
        else:
            DATASETS.get(name)  # raises with the list of valid names
            wanted.append(name)
    splits: list[Split] = []
    for name in dict.fromkeys(wanted):
        cls = DATASETS.get(name).obj
        splits.append(cls(root, **_split_kwargs(cls, layout, {"check_count": check_count})))
    return splits, skipped


def require_available(
    data_root: str | os.PathLike | None, **split_kwargs: Any
) -> tuple[list[str], dict[str, str]]:
    """``--dataset all``: every labelled split found under the root, and why the others are missing.

    Raises:
        DataLayoutError: when no labelled split is found; the message lists each split's reason.
    """
    root = resolve_data_root(data_root)
    found, missing = find_available(root, labelled_only=True, **split_kwargs)
    if not found:
        reasons = "\n".join(f"  {name}: {why}" for name, why in missing.items())
        raise DataLayoutError(f"no labelled dataset found under {root}:\n{reasons}")
    return found, missing
