"""Base class and registry for dataset splits.

A :class:`Split` knows its official on-disk layout under a data root, the official frame count,
its evaluation protocol and (for SMIYC) the persistence name used for prediction files. It lists
frame ids without reading pixels, and loads one :class:`~oodbench.contracts.Frame` at a time with
labels mapped to the 0/1/255 contract.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar, Iterator

from oodbench.contracts import Frame
from oodbench.registry import PluginValidationError, Registry

__all__ = [
    "DATASETS",
    "DataLayoutError",
    "Split",
    "get_split",
    "find_available",
    "register_split",
    "resolve_data_root",
]

DATA_ROOT_ENV = "OODBENCH_DATA"


class DataLayoutError(FileNotFoundError):
    """The data on disk does not match the expected layout; the message names what and where."""


class Split:
    """A labelled (or label-hidden) evaluation split in its official layout.

    Subclasses set the class attributes and implement :meth:`frame_ids` and :meth:`load`.

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

    def __init__(self, root: str | os.PathLike, check_count: bool = True) -> None:
        self.root = Path(root)
        self.check_count = check_count

    # -- to implement ---------------------------------------------------------------------
    def frame_ids(self) -> list[str]:
        """Sorted (or officially ordered) frame ids; raises :class:`DataLayoutError`."""
        raise NotImplementedError

    def load(self, frame_id: str) -> Frame:
        """Load one frame (image, labels mapped to 0/1/255, optional semantic labels)."""
        raise NotImplementedError

    @classmethod
    def detect(cls, root: str | os.PathLike) -> str | None:
        """Return ``None`` if the split's data is present under ``root``, else the reason it is not."""
        try:
            cls(root).frame_ids()
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

    def _check_count(self, ids: list[str], where: Path) -> list[str]:
        if self.check_count and self.expected_count is not None and len(ids) != self.expected_count:
            raise DataLayoutError(
                f"{self.name}: expected {self.expected_count} frames under {where}, found {len(ids)} "
                "(pass check_count=False / --no-count-check to evaluate a partial copy)"
            )
        return ids

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, root={str(self.root)!r})"


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


def find_available(
    data_root: str | os.PathLike | None, labelled_only: bool = True
) -> tuple[list[str], dict[str, str]]:
    """Which registered splits are present under the root.

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
        reason = cls.detect(root)
        if reason is None:
            found.append(name)
        else:
            missing[name] = reason
    return found, missing
