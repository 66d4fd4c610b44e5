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

    def _meta(self, rec: FrameRecord) -> dict[str, Any]:
        meta = {"image_path": str(rec.image)}
        if rec.label is not None:
            meta["label_path"] = str(rec.label)
        meta.update(rec.meta)
        return meta
