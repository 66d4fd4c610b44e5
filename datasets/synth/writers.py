"""Byte-deterministic writers for the synthetic tree.

Every encoder runs with fixed parameters (PNG compress level, JPEG quality/subsampling, WebP
quality/method, a zip entry with a fixed timestamp for ``.npz``), so the same arrays give the same
bytes with the same library versions.  The writer only ever writes inside the generator's private
staging directory, which :func:`oodbench.datasets.synth.generate` publishes with a single atomic
rename; a reader therefore never sees a half-written tree (per-file temp+rename would add nothing).
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["TreeWriter", "npz_bytes"]

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """An ``.npz`` archive (deflated, like ``numpy.savez_compressed``) with fixed zip timestamps."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            arr = io.BytesIO()
            np.lib.format.write_array(arr, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, arr.getvalue())
    return buf.getvalue()


class TreeWriter:
    """Writes files under ``root`` and remembers their relative paths (sorted in the manifest)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.files: list[str] = []

    def _path(self, rel: str) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        self.files.append(rel)
        return p

    def image(self, rel: str, rgb: np.ndarray) -> None:
        """RGB uint8 image; the format follows the suffix (``.png``, ``.jpg``, ``.webp``)."""
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"{rel}: expected RGB uint8 [H, W, 3], got {rgb.dtype} {rgb.shape}")
        im = Image.fromarray(rgb, mode="RGB")
        p = self._path(rel)
        suffix = p.suffix.lower()
        if suffix == ".jpg":
            im.save(p, format="JPEG", quality=92, subsampling=0, optimize=False, progressive=False)
        elif suffix == ".webp":
            im.save(p, format="WEBP", quality=90, method=4, exact=False)
        elif suffix == ".png":
            im.save(p, format="PNG", compress_level=6)
        else:
            raise ValueError(f"{rel}: unsupported image suffix {suffix!r}")

    def label(self, rel: str, arr: np.ndarray) -> None:
        """Single-channel 8-bit label PNG (mode ``L``, values written verbatim)."""
        if arr.dtype != np.uint8 or arr.ndim != 2:
            raise ValueError(f"{rel}: expected uint8 [H, W] labels, got {arr.dtype} {arr.shape}")
        Image.fromarray(arr, mode="L").save(self._path(rel), format="PNG", compress_level=6)

    def palette_label(self, rel: str, arr: np.ndarray, palette: np.ndarray) -> None:
        """8-bit palette PNG (mode ``P``): the stored indices are ``arr``, ``palette`` is ``[N<=256, 3]``
        uint8 (the Mapillary Vistas label format)."""
        if arr.dtype != np.uint8 or arr.ndim != 2:
            raise ValueError(f"{rel}: expected uint8 [H, W] labels, got {arr.dtype} {arr.shape}")
        im = Image.frombytes("P", (arr.shape[1], arr.shape[0]), np.ascontiguousarray(arr).tobytes())
        flat = np.zeros((256, 3), np.uint8)
        flat[: len(palette)] = palette
        im.putpalette(flat.ravel().tolist())
        im.save(self._path(rel), format="PNG", compress_level=6)

    def npz(self, rel: str, **arrays: np.ndarray) -> None:
        self._path(rel).write_bytes(npz_bytes(**arrays))

    def json(self, rel: str, obj) -> None:
        self._path(rel).write_text(json.dumps(obj, indent=1, sort_keys=False) + "\n", encoding="utf-8")
