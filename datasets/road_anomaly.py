"""RoadAnomaly (Lis et al., ICCV 2019): 60 labelled frames, no void.

Two layouts, auto-detected (``docs/benchmarks.md`` §1.6, ``docs/rpl-official.md`` §9):

* **official** -- the extracted ``RoadAnomaly_jpg.zip``
  (``cvlab-epfl/detecting-the-unexpected:src/datasets/road_anomaly.py``):
  ``RoadAnomaly_jpg/frame_list.json`` (list of image file names, which also gives the order),
  ``frames/<name>.jpg`` and ``frames/<stem>.labels/labels_semantic.png`` with raw classes
  0 background, 1 road, 2 anomaly. Anomaly label = ``raw >= 2`` -> 1, everything else 0; raw
  values above 2 are rejected (:class:`~oodbench.contracts.ContractError`).
* **preprocessed** -- the SynBoost copy used by PEBAL/RPL
  (``yyliu01/RPL:rpl.code/dataset/validation/road_anomaly.py``): ``road_anomaly/original/*.jpg``
  and ``road_anomaly/labels/<stem>.png`` holding 0 inlier / 1 anomaly; sorted by name.

Frame id = the image file stem. Frame sizes vary (check per image). If both layouts are present,
pass ``layout="official"`` or ``layout="preprocessed"``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ._indexed import FrameRecord
from ._io import check_raw_values, lookup_table, require_dir, require_file
from ._layouts import TwoLayoutSplit
from .base import DataLayoutError, register_split

__all__ = ["RoadAnomaly", "RA_OFFICIAL_LUT"]

#: official raw classes (0 background, 1 road, 2 anomaly) -> anomaly label.
RA_OFFICIAL_LUT = lookup_table({2: 1}, default=0)


@register_split
class RoadAnomaly(TwoLayoutSplit):
    """RoadAnomaly (Lis et al. 2019): 60 frames, anomaly = raw class 2, no void."""

    name = "road-anomaly"
    benchmark = "RoadAnomaly"
    protocol = "fishyscapes"
    expected_count = 60
    official_dirs = ("RoadAnomaly_jpg",)
    preprocessed_dir = "road_anomaly"

    def _discover(self) -> dict[str, FrameRecord]:
        layout, folder = self._resolve_layout()
        index = self._official(folder) if layout == "official" else self._preprocessed(folder)
        self._check_count(list(index), folder)
        return index

    def _official(self, folder: Path) -> dict[str, FrameRecord]:
        listing = require_file(folder / "frame_list.json", "frame list", self.name)
        try:
            names = json.loads(listing.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataLayoutError(f"{self.name}: cannot read {listing}: {exc}") from exc
        if not isinstance(names, list) or not all(isinstance(n, str) and n and Path(n).name == n for n in names):
            raise DataLayoutError(f"{self.name}: {listing} must be a JSON list of image file names")
        index: dict[str, FrameRecord] = {}
        for name in names:
            image = require_file(folder / "frames" / name, "image", self.name)
            stem = Path(name).stem
            label = require_file(folder / "frames" / f"{stem}.labels" / "labels_semantic.png", "label", self.name)
            if stem in index:
                raise DataLayoutError(f"{self.name}: {listing} lists frame {stem!r} twice")
            index[stem] = FrameRecord(image, label, {"layout": "official"})
        return index

    def _preprocessed(self, folder: Path) -> dict[str, FrameRecord]:
        originals = require_dir(folder / "original", "preprocessed images", self.name)
        labels = require_dir(folder / "labels", "preprocessed labels", self.name)
        stems = sorted(p.stem for p in originals.glob("*.jpg"))
        orphans = sorted({p.stem for p in labels.glob("*.png")} - set(stems))
        if orphans:
            raise DataLayoutError(
                f"{self.name}: missing image {originals / (orphans[0] + '.jpg')} for label "
                f"{labels / (orphans[0] + '.png')}"
            )
        return {
            s: FrameRecord(originals / f"{s}.jpg", require_file(labels / f"{s}.png", "label", self.name),
                           {"layout": "preprocessed"})
            for s in stems
        }

    def _map_labels(self, rec: FrameRecord, raw: np.ndarray) -> tuple[np.ndarray, None]:
        if rec.meta["layout"] == "official":
            check_raw_values(raw, (0, 1, 2), rec.label, "0 (background), 1 (road), 2 (anomaly)")
            return RA_OFFICIAL_LUT[raw], None
        check_raw_values(raw, (0, 1), rec.label, "0 (inlier), 1 (anomaly)")
        return raw, None
