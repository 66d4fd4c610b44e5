"""Fishyscapes validation splits: Lost & Found (100 frames) and Static (30 frames).

Two on-disk layouts, auto-detected (``docs/benchmarks.md`` §1.4-§1.5, ``docs/rpl-official.md`` §9):

* **official** -- the label archives as released (``hermannsblum/bdl-benchmark:bdlb/fishyscapes/fishyscapes_tfds.py``):

  - L&F: ``fishyscapes_lostandfound/DDDD_<lafid>_labels.png``; the image is the Lost & Found
    frame ``dataset_LostAndFound/leftImg8bit/{train,test}/<NN_scene>/<lafid>_leftImg8bit.png``
    (searched in both LAF splits). Frame id = ``<lafid>``.
  - Static: the extracted ``fs_val_v3.zip`` folder, accepted as ``fs_val_v3/`` or
    ``fishyscapes_static/``, holding ``DDDD_<csid>_labels.png`` and the signed overlay
    ``DDDD_<csid>_rgb.npz`` (array ``rgb``). Image =
    ``clip(int(cityscapes/leftImg8bit/val/<city>/<csid>_leftImg8bit.png) + int(overlay), 0, 255)``
    as ``uint8``, exactly as the tfds builder composes it. Frame id = ``<csid>``.

  Frames are the ``*_labels.png`` files ordered by the integer ``DDDD``; the overlay and image of
  a frame are found from its DDDD / id, never by position in a directory listing
  (``Frame.meta["dddd"]``).
* **preprocessed** -- the SynBoost copy used by PEBAL/RPL: ``fishyscapes/LostAndFound/{original,labels}/<name>.png``
  and ``fishyscapes/Static/{original,labels}/<name>.png``; image and label share the file name.
  Frame id = ``<name>`` without a trailing ``_leftImg8bit`` (a leading ``DDDD_`` is split off into
  ``meta["dddd"]`` and gives the order; otherwise the order is by name).

If both layouts are present the split refuses to guess (:class:`DataLayoutError` naming both
paths); pass ``layout="official"`` or ``layout="preprocessed"``.

Labels are used verbatim (0 in-distribution, 1 anomaly, 255 void) and validated: any other value
is a :class:`~oodbench.contracts.ContractError` naming the file.
"""
from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np

from oodbench.contracts import ContractError

from ._indexed import FrameRecord
from ._io import check_raw_values, read_image, require_dir, require_file
from ._layouts import LAYOUTS, TwoLayoutSplit
from ._laf import LAF_IMAGE_EXTS, LAF_IMAGE_SUFFIX, RE_LAF_ID, laf_image_path
from .base import DataLayoutError, register_split

__all__ = ["FishyscapesLAFVal", "FishyscapesStaticVal", "LAYOUTS", "RE_FS_LABELS", "RE_FS_OVERLAY"]

#: ``DDDD_<id>_labels.png`` (the tfds builder's id regex "digits _ rest _labels.png").
RE_FS_LABELS = re.compile(r"^([0-9]+)_(.+)_labels\.png$")
RE_FS_OVERLAY = re.compile(r"^([0-9]+)_(.+)_rgb\.npz$")
_RE_DDDD_NAME = re.compile(r"^([0-9]{4})_(.+)$")
_RE_CITYSCAPES_ID = re.compile(r"^([A-Za-z]+)_([0-9]{6})_([0-9]{6})$")
_FS_ENCODING = "0 (in-distribution), 1 (anomaly), 255 (void)"


class _Fishyscapes(TwoLayoutSplit):
    protocol = "fishyscapes"

    def _discover(self) -> dict[str, FrameRecord]:
        layout, folder = self._resolve_layout()
        index = self._discover_official(folder) if layout == "official" else self._discover_preprocessed(folder)
        self._check_count(list(index), folder)
        return index

    def _official_labels(self, folder: Path) -> list[tuple[str, str, Path]]:
        """``(DDDD, id, path)`` of every ``*_labels.png`` in ``folder``, ordered by integer DDDD."""
        entries = []
        for path in folder.iterdir():
            if not path.name.endswith("_labels.png"):
                continue
            m = RE_FS_LABELS.match(path.name)
            if not m:
                raise DataLayoutError(f"{self.name}: unexpected label file name {path} (expected DDDD_<id>_labels.png)")
            entries.append((m.group(1), m.group(2), path))
        entries.sort(key=lambda e: (int(e[0]), e[2].name))
        for (d1, _, p1), (d2, _, p2) in zip(entries, entries[1:]):
            if int(d1) == int(d2):
                raise DataLayoutError(f"{self.name}: {p1} and {p2} have the same Fishyscapes index {d1}")
        return entries

    def _discover_official(self, folder: Path) -> dict[str, FrameRecord]:
        raise NotImplementedError

    def _discover_preprocessed(self, folder: Path) -> dict[str, FrameRecord]:
        originals = require_dir(folder / "original", "preprocessed images", self.name)
        labels = require_dir(folder / "labels", "preprocessed labels", self.name)
        stems = sorted(p.stem for p in originals.glob("*.png"))
        orphans = sorted({p.stem for p in labels.glob("*.png")} - set(stems))
        if orphans:
            raise DataLayoutError(f"{self.name}: missing image {originals / (orphans[0] + '.png')} "
                                  f"for label {labels / (orphans[0] + '.png')}")
        parsed = [(_RE_DDDD_NAME.match(s), s) for s in stems]
        if stems and all(m is not None for m, _ in parsed):
            parsed.sort(key=lambda e: int(e[0].group(1)))
        index: dict[str, FrameRecord] = {}
        for m, stem in parsed:
            fid, meta = (m.group(2), {"dddd": m.group(1)}) if m is not None else (stem, {})
            fid = fid.removesuffix(LAF_IMAGE_SUFFIX)  # Cityscapes/LAF image names end in _leftImg8bit
            label = require_file(labels / f"{stem}.png", "label", self.name)
            if fid in index:
                raise DataLayoutError(f"{self.name}: two preprocessed images give frame id {fid!r} in {originals}")
            index[fid] = FrameRecord(originals / f"{stem}.png", label, {"layout": "preprocessed", **meta})
        return index

    # -- loading ----------------------------------------------------------------------------
    def _map_labels(self, rec: FrameRecord, raw: np.ndarray) -> tuple[np.ndarray, None]:
        check_raw_values(raw, (0, 1, 255), rec.label, _FS_ENCODING)
        return raw, None


@register_split
class FishyscapesLAFVal(_Fishyscapes):
    """Fishyscapes Lost & Found validation: 100 LAF frames with Fishyscapes anomaly labels."""

    name = "fishyscapes-laf-val"
    benchmark = "Fishyscapes L&F"
    expected_count = 100
    official_dirs = ("fishyscapes_lostandfound",)
    preprocessed_dir = "fishyscapes/LostAndFound"

    def _discover_official(self, folder: Path) -> dict[str, FrameRecord]:
        index: dict[str, FrameRecord] = {}
        for dddd, lafid, label in self._official_labels(folder):
            if not RE_LAF_ID.match(lafid):
                raise DataLayoutError(f"{self.name}: {label}: {lafid!r} is not a Lost & Found frame id")
            candidates = [laf_image_path(self.root, s, lafid, ext) for s in ("train", "test") for ext in LAF_IMAGE_EXTS]
            found = [p for p in candidates if p.is_file()]
            if not found:
                raise DataLayoutError(
                    f"{self.name}: missing image for {label}: neither {candidates[0]} nor {candidates[3]}"
                )
            if {p.parts[-3] for p in found} == {"train", "test"}:
                raise DataLayoutError(f"{self.name}: ambiguous image for {label}: both {found[0]} and {found[-1]}")
            if lafid in index:
                raise DataLayoutError(f"{self.name}: two label files for frame {lafid!r} in {folder}")
            index[lafid] = FrameRecord(found[0], label, {"layout": "official", "dddd": dddd})
        return index


@register_split
class FishyscapesStaticVal(_Fishyscapes):
    """Fishyscapes Static validation (v3): 30 Cityscapes val frames with blended-in anomalies."""

    name = "fishyscapes-static-val"
    benchmark = "Fishyscapes Static"
    expected_count = 30
    official_dirs = ("fs_val_v3", "fishyscapes_static")
    preprocessed_dir = "fishyscapes/Static"

    def _discover_official(self, folder: Path) -> dict[str, FrameRecord]:
        overlays: dict[int, list[Path]] = {}
        for path in folder.glob("*_rgb.npz"):
            m = RE_FS_OVERLAY.match(path.name)
            if m:
                overlays.setdefault(int(m.group(1)), []).append(path)
        index: dict[str, FrameRecord] = {}
        for dddd, csid, label in self._official_labels(folder):
            m = _RE_CITYSCAPES_ID.match(csid)
            if not m:
                raise DataLayoutError(f"{self.name}: {label}: {csid!r} is not a Cityscapes frame id <city>_<seq>_<frame>")
            found = overlays.get(int(dddd), [])
            if len(found) != 1:
                if not found:
                    raise DataLayoutError(f"{self.name}: missing overlay {folder / f'{dddd}_{csid}_rgb.npz'}")
                raise DataLayoutError(f"{self.name}: ambiguous overlay for {label}: {sorted(map(str, found))}")
            image = self.root / "cityscapes" / "leftImg8bit" / "val" / m.group(1) / f"{csid}_leftImg8bit.png"
            require_file(image, "Cityscapes image", self.name)
            if csid in index:
                raise DataLayoutError(f"{self.name}: two label files for frame {csid!r} in {folder}")
            index[csid] = FrameRecord(image, label, {"layout": "official", "dddd": dddd, "overlay_path": str(found[0])})
        return index

    def input_files(self, frame_id: str) -> tuple[Path, ...]:
        """The Cityscapes image and, in the official layout, the overlay added to it."""
        rec = self.record(frame_id)
        overlay = rec.meta.get("overlay_path")
        return (rec.image,) if overlay is None else (rec.image, Path(overlay))

    def _image(self, rec: FrameRecord) -> np.ndarray:
        base = read_image(rec.image)
        if "overlay_path" not in rec.meta:
            return base
        npz = Path(rec.meta["overlay_path"])
        try:
            with np.load(npz, allow_pickle=False) as data:
                if "rgb" not in data.files:
                    raise ContractError(f"{npz}: overlay archive has no array 'rgb' (found {data.files})")
                overlay = data["rgb"]
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            if isinstance(exc, ContractError):
                raise
            raise ContractError(f"{npz}: cannot read overlay: {type(exc).__name__}: {exc}") from exc
        if overlay.shape != base.shape or overlay.dtype.kind not in "iuf":
            raise ContractError(
                f"{npz}: overlay {overlay.dtype} {tuple(overlay.shape)} does not match image {rec.image} "
                f"{tuple(base.shape)} (a signed RGB offset of the image's shape is expected)"
            )
        return np.clip(base.astype(np.int64) + overlay.astype(np.int64), 0, 255).astype(np.uint8)
