"""A :class:`~oodbench.datasets.Split` whose frames are indexed once from a directory listing.

Adapters implement :meth:`IndexedSplit._discover` (list files, apply the official split rules,
check every needed file exists, check the count) and :meth:`load`. ``frame_ids()`` runs discovery
once per instance and caches only paths -- never decoded pixels -- so iteration streams one frame
at a time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._io import check_same_size, read_image, read_label
from .base import Split

__all__ = ["FrameRecord", "IndexedSplit"]


@dataclass(frozen=True)
class FrameRecord:
    """Where one frame lives: its image, its label (``None`` when hidden) and adapter facts."""

    image: Path
    label: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class IndexedSplit(Split):
    """Base of the built-in adapters: cached ``frame id -> FrameRecord`` index."""

    _index: dict[str, FrameRecord] | None = None

    def _discover(self) -> dict[str, FrameRecord]:
        """Build the ordered index; raise :class:`~oodbench.datasets.DataLayoutError` on bad layouts."""
        raise NotImplementedError

    def frame_ids(self) -> list[str]:
        """Frame ids in the split's official order (discovered once, then cached)."""
        if self._index is None:
            self._index = self._discover()
        return list(self._index)

    def record(self, frame_id: str) -> FrameRecord:
        """The :class:`FrameRecord` of ``frame_id``; :class:`KeyError` naming the split if unknown."""
        if self._index is None:
            self.frame_ids()
        assert self._index is not None
        try:
            return self._index[frame_id]
        except KeyError:
            raise KeyError(f"{self.name}: no frame {frame_id!r} under {self.root}") from None

    def _image(self, rec: FrameRecord) -> np.ndarray:
        """The frame's RGB image (adapters that compose images, e.g. FS Static, override this)."""
        return read_image(rec.image)

    def read_pair(self, frame_id: str) -> tuple[FrameRecord, np.ndarray, np.ndarray]:
        """``(record, RGB image, raw label map)`` of a labelled frame, sizes checked (errors name the files)."""
        rec = self.record(frame_id)
        if rec.label is None:
            raise KeyError(f"{self.name}: frame {frame_id!r} has no public label")
        image = self._image(rec)
        raw = read_label(rec.label)
        check_same_size(image, raw, rec.image, rec.label)
        return rec, image, raw

    def _meta(self, rec: FrameRecord) -> dict[str, Any]:
        meta = {"image_path": str(rec.image)}
        if rec.label is not None:
            meta["label_path"] = str(rec.label)
        meta.update(rec.meta)
        return meta
