"""A :class:`~oodbench.datasets.Split` whose frames are indexed once from a directory listing.

Adapters implement :meth:`IndexedSplit._discover` (list files, apply the official split rules,
check every needed file exists, check the count) and :meth:`IndexedSplit._map_labels` (raw label
map -> contract labels, validating the raw encoding). ``frame_ids()`` runs discovery once per
instance and caches only paths -- never decoded pixels -- so iteration streams one frame at a time.

:meth:`~IndexedSplit.load` and :meth:`~IndexedSplit.load_labels` share the label path (read, size
check, mapping), so they cannot disagree; ``load_labels`` checks the size against the image's
header instead of decoding the image.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from oodbench.contracts import Frame

from ._io import check_same_size, read_image, read_image_size, read_label
from .base import FrameLabels, Split

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

    def input_files(self, frame_id: str) -> tuple[Path, ...]:
        """The image file (adapters that compose images from several files, e.g. FS Static, add theirs)."""
        return (self.record(frame_id).image,)

    def _map_labels(self, rec: FrameRecord, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``(anomaly labels in 0/1/255, semantic labels or None)`` from the raw label map of ``rec``.

        Raises :class:`~oodbench.contracts.ContractError` naming ``rec.label`` for raw values
        outside the split's documented encoding.
        """
        raise NotImplementedError

    def _image(self, rec: FrameRecord) -> np.ndarray:
        """The frame's RGB image (adapters that compose images, e.g. FS Static, override this)."""
        return read_image(rec.image)

    def _image_size(self, rec: FrameRecord) -> tuple[int, int]:
        """``(height, width)`` of :meth:`_image` from the image file's header (no decoding)."""
        return read_image_size(rec.image)

    def load(self, frame_id: str) -> Frame:
        """The frame: RGB image, contract labels (``None`` when hidden), semantic labels, meta."""
        rec = self.record(frame_id)
        image = self._image(rec)
        label = semantic = None
        if rec.label is not None:
            raw = read_label(rec.label)
            check_same_size(image, raw, rec.image, rec.label)
            label, semantic = self._map_labels(rec, raw)
        return Frame(frame_id, image, label, semantic, meta=self._meta(rec))

    def load_labels(self, frame_id: str) -> FrameLabels:
        """What :meth:`load` gives minus the image, which is never decoded (only its header read)."""
        rec = self.record(frame_id)
        label = semantic = None
        if rec.label is not None:
            size = self._image_size(rec)
            raw = read_label(rec.label)
            check_same_size(size, raw, rec.image, rec.label)
            label, semantic = self._map_labels(rec, raw)
        return FrameLabels(frame_id, label, semantic, meta=self._meta(rec))

    def _meta(self, rec: FrameRecord) -> dict[str, Any]:
        meta = {"image_path": str(rec.image)}
        if rec.label is not None:
            meta["label_path"] = str(rec.label)
        meta.update(rec.meta)
        return meta
