"""SegmentMeIfYouCan splits: AnomalyTrack val/test, ObstacleTrack val/test, LostAndFound-noKnown.

Layouts, split rules and label mappings follow the official loader
``SegmentMeIfYouCan/road-anomaly-benchmark:road_anomaly_benchmark/datasets/tracks.py`` (classes
``DatasetAnomalyTrack``, ``DatasetObstacleTrack``, ``DatasetLostAndFound``) and
``.../datasets/tracks_extra.py`` (AnomalyTrack validation ids), as summarised in
``docs/benchmarks.md`` §1.1-§1.3:

* **AnomalyTrack** (``dataset_AnomalyTrack/``): frames = ``images/*.jpg`` sorted by stem;
  validation = ``validation0000..0009`` (10), test = every other image (100, labels hidden).
  Label ``labels_masks/<fid>_labels_semantic.png`` (the path is built from the frame id, so the
  ``*_color.png`` visualisations next to it are never read).
* **ObstacleTrack** (``dataset_ObstacleTrack/``): frames = ``images/*.webp``; scene = text before
  the first ``_``. Test = scenes other than snowstorm1/2, driveway, validation (327, hidden);
  validation = scene ``validation`` minus ids starting with ``validation_19``, ``validation_21`` ...
  ``validation_29`` (30). An image of an unknown scene is an error (the official code drops it).
* SMIYC label mapping (both tracks): ``label = 255; label[raw == 0] = 0; label[raw == 1] = 1``.
* **LostAndFound-testNoKnown** (``dataset_LostAndFound/``): all ``leftImg8bit/test/*/*_leftImg8bit.<ext>``
  frames (ext: first of png/webp/jpg present) sorted by frame id; delete the positional indices
  :data:`LAF_NOKNOWN_EXCLUDED_INDICES` of that list (1203 -> 1186), then drop ids starting with
  :data:`LAF_NOKNOWN_EXCLUDED_PREFIXES` (-> 1043). Mapping of ``gtCoarse`` labelIds:
  ``0 -> 255``, ``1 -> 0`` (free road), ``2..200 -> 1`` (obstacle), anything else ``-> 255``.

  oodbench rule for smaller copies (the synthetic benchmark): the positional indices refer to the
  official 1203-frame list, so they are applied only when exactly 1203 test frames are present;
  the prefix exclusions are always applied. With another count and strict counting (and no
  manifest count for this split) loading fails rather than deleting the wrong frames.

Predictions persist under ``AnomalyTrack-all``, ``ObstacleTrack-all`` and ``LostAndFound-test``
(``persistence_name``) and are stored as float16.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ._indexed import FrameRecord, IndexedSplit
from ._io import lookup_table, require_dir, require_file
from ._laf import (
    LAF_DIR,
    LAF_IMAGE_EXTS,
    LAF_IMAGE_SUFFIX,
    RE_LAF_ID,
    laf_label_path,
    laf_scene_folder,
)
from .base import DataLayoutError, register_split

__all__ = [
    "AnomalyTrackTest",
    "AnomalyTrackVal",
    "LAF_NOKNOWN_EXCLUDED_INDICES",
    "LAF_NOKNOWN_EXCLUDED_PREFIXES",
    "LAF_TEST_COUNT",
    "LostAndFoundNoKnown",
    "OBSTACLE_SCENES",
    "OBSTACLE_TEST_SCENES",
    "OBSTACLE_VAL_EXCLUDED_PREFIXES",
    "ObstacleTrackTest",
    "ObstacleTrackVal",
    "SMIYC_LUT",
    "LAF_LUT",
]

#: SMIYC AnomalyTrack / ObstacleTrack raw -> evaluation label (0 -> 0, 1 -> 1, else 255).
SMIYC_LUT = lookup_table({0: 0, 1: 1}, default=255)
#: LostAndFound labelIds -> evaluation label (0 -> 255, 1 -> 0, 2..200 -> 1, else 255).
LAF_LUT = lookup_table({1: 0, **{k: 1 for k in range(2, 201)}}, default=255)

#: all ObstacleTrack scenes of the official loader (``DatasetObstacleTrack.SCENES_ALL``).
OBSTACLE_SCENES = frozenset({
    "curvy-street", "one-way-street", "gravel", "greyasphalt", "motorway", "paving", "darkasphalt",
    "darkasphalt2", "snowstorm1", "snowstorm2", "driveway", "validation",
})
OBSTACLE_TEST_SCENES = OBSTACLE_SCENES - {"snowstorm1", "snowstorm2", "driveway", "validation"}
OBSTACLE_VAL_EXCLUDED_PREFIXES = ("validation_19",) + tuple(f"validation_{n}" for n in range(21, 30))

#: frames of the official LostAndFound test list (``LostAndFound-test``).
LAF_TEST_COUNT = 1203
#: positions (in the fid-sorted test list) of frames whose source labels are all zero.
LAF_NOKNOWN_EXCLUDED_INDICES = (17, 37, 55, 72, 91, 110, 129, 153, 174, 197, 218, 353, 490, 618, 686, 792, 793)
#: sequences with known objects (children, bicycles) removed from LostAndFound-testNoKnown.
LAF_NOKNOWN_EXCLUDED_PREFIXES = (
    "15_Rechbergstr_Deckenpfronn",
    "01_Hanns_Klemm_Str_45_000006",
    "01_Hanns_Klemm_Str_45_000007",
    "10_Schlossberg_9_000004",
)


class _SmiycSplit(IndexedSplit):
    """Common SMIYC attributes and the ``images/`` + ``labels_masks/`` frame loading."""

    protocol = "smiyc"
    score_dtype = "float16"
    folder = ""
    image_ext = ""

    def _wanted(self, fid: str, path: Path) -> bool:
        raise NotImplementedError

    def _discover(self) -> dict[str, FrameRecord]:
        base = self.root / self.folder
        images = require_dir(base / "images", f"{self.benchmark} images", self.name)
        fids = sorted(p.stem for p in images.glob(f"*.{self.image_ext}"))
        chosen = [f for f in fids if self._wanted(f, images / f"{f}.{self.image_ext}")]
        self._check_count(chosen, images)
        index = {}
        for fid in chosen:
            label = None
            if self.labels_public:
                label = require_file(base / "labels_masks" / f"{fid}_labels_semantic.png", "label", self.name)
            index[fid] = FrameRecord(images / f"{fid}.{self.image_ext}", label)
        return index

    def _map_labels(self, rec: FrameRecord, raw: np.ndarray) -> tuple[np.ndarray, None]:
        return SMIYC_LUT[raw], None


class _AnomalyTrack(_SmiycSplit):
    benchmark = "SMIYC AnomalyTrack"
    persistence_name = "AnomalyTrack-all"
    component_metrics = "AnomalyTrack"
    folder = "dataset_AnomalyTrack"
    image_ext = "jpg"


@register_split
class AnomalyTrackVal(_AnomalyTrack):
    """SMIYC AnomalyTrack (RoadAnomaly21) validation: 10 labelled frames ``validation0000..0009``."""

    name = "smiyc-anomaly-val"
    expected_count = 10

    def _wanted(self, fid: str, path: Path) -> bool:
        return fid.startswith("validation")


@register_split
class AnomalyTrackTest(_AnomalyTrack):
    """SMIYC AnomalyTrack test: the 100 non-validation frames; labels hidden (submission only)."""

    name = "smiyc-anomaly-test"
    expected_count = 100
    labels_public = False

    def _wanted(self, fid: str, path: Path) -> bool:
        return not fid.startswith("validation")


class _ObstacleTrack(_SmiycSplit):
    benchmark = "SMIYC ObstacleTrack"
    persistence_name = "ObstacleTrack-all"
    component_metrics = "ObstacleTrack"
    folder = "dataset_ObstacleTrack"
    image_ext = "webp"

    def _scene(self, fid: str, path: Path) -> str:
        scene = fid.split("_")[0]
        if scene not in OBSTACLE_SCENES:
            raise DataLayoutError(
                f"{self.name}: unexpected image {path}: scene {scene!r} is not an ObstacleTrack scene "
                f"(known: {', '.join(sorted(OBSTACLE_SCENES))})"
            )
        return scene


@register_split
class ObstacleTrackVal(_ObstacleTrack):
    """SMIYC ObstacleTrack (RoadObstacle21) validation: 30 labelled ``validation_N`` frames."""

    name = "smiyc-obstacle-val"
    expected_count = 30

    def _wanted(self, fid: str, path: Path) -> bool:
        return self._scene(fid, path) == "validation" and not fid.startswith(OBSTACLE_VAL_EXCLUDED_PREFIXES)


@register_split
class ObstacleTrackTest(_ObstacleTrack):
    """SMIYC ObstacleTrack test: 327 frames of the daytime scenes; labels hidden (submission only)."""

    name = "smiyc-obstacle-test"
    expected_count = 327
    labels_public = False

    def _wanted(self, fid: str, path: Path) -> bool:
        return self._scene(fid, path) in OBSTACLE_TEST_SCENES


@register_split
class LostAndFoundNoKnown(IndexedSplit):
    """SMIYC LostAndFound-testNoKnown: 1043 LAF test frames without known objects (module docstring)."""

    name = "smiyc-laf-noknown"
    benchmark = "SMIYC LostAndFound-noKnown"
    protocol = "smiyc"
    expected_count = 1043
    persistence_name = "LostAndFound-test"
    component_metrics = "ObstacleTrack"
    score_dtype = "float16"

    def _discover(self) -> dict[str, FrameRecord]:
        img_dir = require_dir(self.root / LAF_DIR / "leftImg8bit" / "test", "LostAndFound test images", self.name)
        files: list[Path] = []
        for ext in LAF_IMAGE_EXTS:  # official rule: the first extension that has any image wins
            files = list(img_dir.glob(f"*/*{LAF_IMAGE_SUFFIX}.{ext}"))
            if files:
                break
        if not files:
            raise DataLayoutError(
                f"{self.name}: no LostAndFound test images */*{LAF_IMAGE_SUFFIX}.png|webp|jpg under {img_dir}"
            )
        by_fid: dict[str, Path] = {}
        for path in files:
            fid = path.stem[: -len(LAF_IMAGE_SUFFIX)]
            if not RE_LAF_ID.match(fid) or path.parent.name != laf_scene_folder(fid):
                raise DataLayoutError(
                    f"{self.name}: unexpected image {path}: expected <NN>_<scene>/<NN>_<scene>_<seq:6>_<frame:6>"
                    f"{LAF_IMAGE_SUFFIX}{path.suffix}"
                )
            by_fid[fid] = path
        fids = sorted(by_fid)
        if len(fids) == LAF_TEST_COUNT:
            drop = set(LAF_NOKNOWN_EXCLUDED_INDICES)
            fids = [f for i, f in enumerate(fids) if i not in drop]
        elif self.check_count and self.name not in self.manifest.get("counts", {}):
            raise DataLayoutError(
                f"{self.name}: expected {LAF_TEST_COUNT} LostAndFound test frames under {img_dir}, found "
                f"{len(fids)} (the noKnown exclusions are positions in the full test list; pass "
                "check_count=False / --no-count-check to evaluate a partial copy without them)"
            )
        elif not self.synthetic:
            warnings.warn(
                f"{self.name}: {len(fids)} LostAndFound test frames under {img_dir} (official "
                f"{LAF_TEST_COUNT}): the positional noKnown exclusions are not applied",
                RuntimeWarning,
                stacklevel=3,
            )
        fids = [f for f in fids if not f.startswith(LAF_NOKNOWN_EXCLUDED_PREFIXES)]
        self._check_count(fids, img_dir)
        index = {}
        for fid in fids:
            label = require_file(laf_label_path(self.root, "test", fid), "label", self.name)
            index[fid] = FrameRecord(by_fid[fid], label, {"scene": laf_scene_folder(fid)})
        return index

    def _map_labels(self, rec: FrameRecord, raw: np.ndarray) -> tuple[np.ndarray, None]:
        return LAF_LUT[raw], None
