"""Splits released in two on-disk layouts: the official release and the SynBoost copy.

Fishyscapes (Lost & Found, Static) and RoadAnomaly are found either as the official release or
as the preprocessed copy PEBAL and RPL evaluate on (``docs/benchmarks.md`` §1.4-§1.6,
``docs/rpl-official.md`` §9). :class:`TwoLayoutSplit` is the one place that decides which of the
two a data root holds: it auto-detects, refuses to guess when both are present and takes
``layout="official"`` / ``layout="preprocessed"`` to choose. It declares :attr:`Split.layouts
<oodbench.datasets.Split.layouts>`, which is how the CLI knows to pass ``--layout`` on.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from oodbench.errors import UsageError

from ._indexed import IndexedSplit
from ._io import require_dir
from .base import DataLayoutError

__all__ = ["LAYOUTS", "TwoLayoutSplit"]

#: the two layouts, in the order ``--layout`` lists them
LAYOUTS: tuple[str, ...] = ("official", "preprocessed")


class TwoLayoutSplit(IndexedSplit):
    """An :class:`IndexedSplit` whose data is either the official release or the preprocessed copy.

    Subclasses set :attr:`official_dirs` (folders under the root that hold the official release;
    more than one name when the release is unpacked under different names) and
    :attr:`preprocessed_dir`, and index the folder :meth:`_resolve_layout` returns.
    """

    layouts: ClassVar[tuple[str, ...]] = LAYOUTS
    official_dirs: ClassVar[tuple[str, ...]] = ()
    preprocessed_dir: ClassVar[str] = ""

    def __init__(self, root, check_count: bool = True, layout: str | None = None) -> None:
        super().__init__(root, check_count)
        if layout is not None and layout not in self.layouts:
            raise UsageError(f"{self.name}: layout must be one of {self.layouts} or None, got {layout!r}")
        self.layout = layout

    def _resolve_layout(self) -> tuple[str, Path]:
        """``(layout, folder)``: the chosen layout, or the only one present; else a :class:`DataLayoutError`."""
        official = [self.root / d for d in self.official_dirs if (self.root / d).is_dir()]
        pre = self.root / self.preprocessed_dir
        if len(official) > 1 and self.layout != "preprocessed":
            raise DataLayoutError(
                f"{self.name}: ambiguous layout under {self.root}: both {official[0]} and {official[1]} "
                "are present; keep only one"
            )
        if self.layout == "official" or (self.layout is None and official and not pre.is_dir()):
            if not official:
                raise DataLayoutError(
                    f"{self.name}: missing official layout folder "
                    f"{' or '.join(str(self.root / d) for d in self.official_dirs)}"
                )
            return "official", official[0]
        if self.layout == "preprocessed" or (self.layout is None and pre.is_dir() and not official):
            return "preprocessed", require_dir(pre, "preprocessed layout", self.name)
        if official:
            raise DataLayoutError(
                f"{self.name}: ambiguous layout under {self.root}: both the official layout ({official[0]}) "
                f"and the preprocessed layout ({pre}) are present; pass layout='official' or "
                "layout='preprocessed'"
            )
        raise DataLayoutError(
            f"{self.name}: not found under {self.root}: neither the official layout "
            f"({' or '.join(str(self.root / d) for d in self.official_dirs)}) nor the preprocessed "
            f"layout ({pre})"
        )
