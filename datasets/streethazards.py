"""StreetHazards test (Hendrycks et al., CAOS): 1500 frames of the CARLA towns t5 and t6.

Layout (``hendrycks/anomaly-seg:create_dataset.py``,
``matejgrcic/DenseHybrid:data/datasets/street_hazards/streethazards_test.py``; ``docs/benchmarks.md`` §1.7):
``StreetHazards/test/images/test/{t5,t6}/<stem>.png`` and the label at the same path with
``images`` -> ``annotations``. Frame id = ``<stem>`` (it must be unique across the two towns);
order = town, then stem; ``Frame.meta["town"]`` is ``"t5"`` or ``"t6"``.

Raw labels are 1..14 (1 unlabeled, 2 building, 3 fence, 4 other, 5 pedestrian, 6 pole, 7 road line,
8 road, 9 sidewalk, 10 vegetation, 11 car, 12 wall, 13 traffic sign, 14 anomaly); any other value
is a :class:`~oodbench.contracts.ContractError`.

* ``Frame.label`` -- Hendrycks protocol (``hendrycks/anomaly-seg:eval_ood.py``, §2.3): anomaly =
  raw 14 -> 1, every other pixel 0 (no void: "unlabeled" and "other" are inliers).
* ``Frame.semantic`` -- DenseHybrid ids (``matejgrcic/DenseHybrid:data/datasets/street_hazards/streethazards_test.py``,
  §5.1): known classes 0..11 (0 unlabeled, 1 building, 2 fence, 3 person, 4 pole, 5 road line,
  6 road, 7 sidewalk, 8 vegetation, 9 car, 10 wall, 11 traffic sign), 12 anomaly, 255 ignore
  (raw 4 "other", which DenseHybrid ignores in training and evaluation). DenseHybrid writes the
  ignore class as 13; oodbench uses the contract's 255.
"""
from __future__ import annotations

import numpy as np

from oodbench.contracts import Frame

from ._indexed import FrameRecord, IndexedSplit
from ._io import check_raw_values, lookup_table, require_dir, require_file
from .base import DataLayoutError, FrameLabels, register_split

__all__ = ["SH_ANOMALY_LUT", "SH_SEMANTIC_LUT", "SH_TOWNS", "StreetHazardsTest"]

SH_TOWNS = ("t5", "t6")
_SH_ENCODING = "1..14 (StreetHazards classes; 14 = anomaly)"
#: raw 14 (anomaly) -> 1, every other pixel 0 (Hendrycks protocol, no void).
SH_ANOMALY_LUT = lookup_table({14: 1}, default=0)
#: raw 1..14 -> DenseHybrid ids: 12 known classes 0..11, anomaly 12, "other" (raw 4) -> 255.
SH_SEMANTIC_LUT = lookup_table(
    {1: 0, 2: 1, 3: 2, 4: 255, 5: 3, 6: 4, 7: 5, 8: 6, 9: 7, 10: 8, 11: 9, 12: 10, 13: 11, 14: 12},
    default=255,
)


@register_split
class StreetHazardsTest(IndexedSplit):
    """StreetHazards test split (towns t5, t6) with anomaly labels and 12-class semantic labels.

    Attributes:
        semantic_mapping: oodbench's choice (not an official table) of how the 19 Cityscapes
            train ids map to the 12 DenseHybrid StreetHazards ids when a Cityscapes-trained model is
            evaluated closed-set on StreetHazards (the synthetic demo does that): road -> road,
            sidewalk -> sidewalk, building, wall, fence, pole, traffic sign, vegetation -> the same
            class, person and rider -> person, car/truck/bus -> car; traffic light, terrain, sky,
            train, motorcycle and bicycle -> 0 (unlabeled), since StreetHazards has no such class.
        cityscapes_to_semantic: the same table under its earlier name.
    """

    name = "streethazards-test"
    benchmark = "StreetHazards"
    protocol = "streethazards"
    expected_count = 1500
    num_classes = 12
    folder = "StreetHazards"

    semantic_mapping: dict[int, int] = {
        0: 6,    # road -> road
        1: 7,    # sidewalk -> sidewalk
        2: 1,    # building -> building
        3: 10,   # wall -> wall
        4: 2,    # fence -> fence
        5: 4,    # pole -> pole
        6: 0,    # traffic light -> unlabeled
        7: 11,   # traffic sign -> traffic sign
        8: 8,    # vegetation -> vegetation
        9: 0,    # terrain -> unlabeled
        10: 0,   # sky -> unlabeled
        11: 3,   # person -> person
        12: 3,   # rider -> person
        13: 9,   # car -> car
        14: 9,   # truck -> car
        15: 9,   # bus -> car
        16: 0,   # train -> unlabeled
        17: 0,   # motorcycle -> unlabeled
        18: 0,   # bicycle -> unlabeled
    }
    cityscapes_to_semantic = semantic_mapping

    def _discover(self) -> dict[str, FrameRecord]:
        base = self.root / self.folder / "test"
        images = require_dir(base / "images" / "test", "StreetHazards test images", self.name)
        towns = sorted(p.name for p in images.iterdir() if p.is_dir())
        unknown = [t for t in towns if t not in SH_TOWNS]
        if unknown:
            raise DataLayoutError(
                f"{self.name}: unexpected town folder {images / unknown[0]} (the test towns are t5 and t6)"
            )
        if not towns:
            raise DataLayoutError(f"{self.name}: no town folder (t5, t6) under {images}")
        index: dict[str, FrameRecord] = {}
        for town in towns:
            for image in sorted((images / town).glob("*.png")):
                fid = image.stem
                if fid in index:
                    raise DataLayoutError(
                        f"{self.name}: frame id {fid!r} is not unique: {index[fid].image} and {image}"
                    )
                label = base / "annotations" / "test" / town / image.name
                require_file(label, "label", self.name)
                index[fid] = FrameRecord(image, label, {"town": town})
        self._check_count(list(index), images)
        return index

    def _map_labels(self, rec: FrameRecord, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        check_raw_values(raw, range(1, 15), rec.label, _SH_ENCODING)
        return SH_ANOMALY_LUT[raw], SH_SEMANTIC_LUT[raw]

    def calibration_group(self, frame: Frame | FrameLabels) -> str:
        """The frame's town (``"t5"`` / ``"t6"``): open-set calibration is per town (§5.1)."""
        return frame.meta["town"]
