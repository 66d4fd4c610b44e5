"""Shared reading helpers of the dataset adapters: Pillow decoding with errors that name the file.

Every adapter reads pixels only through these functions, so the failure modes are uniform:

* a missing file is a :class:`~oodbench.datasets.DataLayoutError` naming the path and its role;
* an undecodable file (corrupt, truncated, or WebP on a Pillow built without WebP -- SMIYC
  ObstacleTrack images are ``.webp``) is a :class:`~oodbench.contracts.ContractError` naming it;
* a label whose size differs from its image, or that holds values outside the documented raw
  encoding, is a :class:`~oodbench.contracts.ContractError` naming the label file.

Nothing is cached: each call decodes one file (streaming; memory stays O(one frame)).
:func:`read_image_size` reads only an image's header (evaluation checks label sizes against it
without decoding the image).
Images come back as RGB ``uint8 [H, W, 3]`` (alpha dropped, as in the SMIYC wrapper
``SegmentMeIfYouCan/road-anomaly-benchmark:road_anomaly_benchmark/datasets/dataset_io.py``);
labels as the raw single-channel ``uint8 [H, W]`` map (palette PNGs give their indices).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image, features

from oodbench.contracts import ContractError

from .base import DataLayoutError

__all__ = [
    "IMAGE_MODES",
    "check_raw_values",
    "check_same_size",
    "lookup_table",
    "read_image",
    "read_image_size",
    "read_label",
    "require_dir",
    "require_file",
]

#: Pillow modes converted to RGB without loss of meaning (alpha is dropped).
IMAGE_MODES = frozenset({"RGB", "RGBA", "RGBX", "L", "LA", "P", "PA", "CMYK", "YCbCr"})
_LABEL_MODES = frozenset({"L", "P", "1", "I", "I;16", "I;16L", "I;16B", "I;16N", "LA", "RGB", "RGBA"})


def require_file(path: Path, what: str, split: str) -> Path:
    """Raise :class:`DataLayoutError` (``"<split>: missing <what> <path>"``) unless ``path`` is a file."""
    if not path.is_file():
        raise DataLayoutError(f"{split}: missing {what} {path}")
    return path


def require_dir(path: Path, what: str, split: str) -> Path:
    """Raise :class:`DataLayoutError` (``"<split>: missing <what> folder <path>"``) unless it is a folder."""
    if not path.is_dir():
        raise DataLayoutError(f"{split}: missing {what} folder {path}")
    return path


def _open(path: Path, what: str, decode: bool = True) -> Image.Image:
    if not path.is_file():
        raise DataLayoutError(f"missing {what} {path}")
    try:
        im = Image.open(path)
        if decode:
            im.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        hint = ""
        if path.suffix.lower() == ".webp" and not features.check("webp"):
            hint = " (this Pillow was built without WebP support, needed for SMIYC ObstacleTrack images)"
        raise ContractError(f"{path}: cannot read {what}: {type(exc).__name__}: {exc}{hint}") from exc
    return im


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to RGB ``uint8 [H, W, 3]``.

    Raises:
        DataLayoutError: the file does not exist.
        ContractError: it cannot be decoded, or it is not an 8-bit colour/grey image
            (e.g. a 16-bit LAF ``leftImg16bit`` frame).
    """
    path = Path(path)
    with _open(path, "image") as im:
        _check_image_mode(im, path)
        rgb = im if im.mode == "RGB" else im.convert("RGB")
        return np.asarray(rgb, dtype=np.uint8).copy()


def read_image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` of an image file from its header, without decoding the pixels.

    Raises the same errors as :func:`read_image` for a missing file, an unreadable header or an
    unsupported mode; damage past the header is only found by :func:`read_image`.
    """
    path = Path(path)
    with _open(path, "image", decode=False) as im:
        _check_image_mode(im, path)
        return int(im.height), int(im.width)


def _check_image_mode(im: Image.Image, path: Path) -> None:
    if im.mode not in IMAGE_MODES:
        raise ContractError(
            f"{path}: cannot read image: unsupported mode {im.mode!r} (expected 8-bit RGB or grey)"
        )


def read_label(path: str | os.PathLike) -> np.ndarray:
    """Decode a label PNG to its raw single-channel ``uint8 [H, W]`` values.

    Grey and palette images give their stored values; 16-bit images are accepted when every value
    fits in 0..255; RGB(A) images only when the three channels are identical (then channel 0, as
    community RoadAnomaly loaders read it).

    Raises:
        DataLayoutError: the file does not exist.
        ContractError: it cannot be decoded or is not a single-channel label map.
    """
    path = Path(path)
    with _open(path, "label") as im:
        mode = im.mode
        if mode not in _LABEL_MODES:
            raise ContractError(f"{path}: cannot read label: unsupported mode {mode!r}")
        arr = np.asarray(im)
    if mode in ("LA",):
        arr = arr[..., 0]
    elif mode in ("RGB", "RGBA"):
        rgb = arr[..., :3]
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
            raise ContractError(
                f"{path}: cannot read label: a colour image with differing channels is not a label map "
                "(is it a *_color.png visualisation?)"
            )
        arr = rgb[..., 0]
    if arr.dtype != np.uint8:
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) > 255):
            raise ContractError(
                f"{path}: unexpected label values (range {int(arr.min())}..{int(arr.max())}); "
                "label maps must fit in 0..255"
            )
        arr = arr.astype(np.uint8)
    return np.ascontiguousarray(arr)


def check_same_size(image: np.ndarray | tuple[int, int], label: np.ndarray, image_path: Path,
                    label_path: Path) -> None:
    """Raise :class:`ContractError` naming both files when label and image sizes differ.

    ``image`` is the decoded image or its ``(height, width)`` (:func:`read_image_size`).
    """
    ih, iw = image if isinstance(image, tuple) else image.shape[:2]
    lh, lw = label.shape[:2]
    if (ih, iw) != (lh, lw):
        raise ContractError(
            f"{label_path}: label size {lw}x{lh} does not match image {image_path} size {iw}x{ih}"
        )


def check_raw_values(raw: np.ndarray, allowed: Iterable[int], path: Path, encoding: str) -> None:
    """Raise :class:`ContractError` when ``raw`` holds values outside ``allowed``.

    The message names the file, up to ten offending values and the documented ``encoding``.
    """
    ok = np.zeros(256, dtype=bool)
    ok[list(allowed)] = True
    present = np.flatnonzero(np.bincount(raw.ravel(), minlength=256))
    bad = present[~ok[present]]
    if bad.size:
        raise ContractError(
            f"{path}: unexpected label values {bad[:10].tolist()}; expected {encoding}"
        )


def lookup_table(mapping: dict[int, int], default: int) -> np.ndarray:
    """A 256-entry ``uint8`` table: ``table[raw] = mapping.get(raw, default)``."""
    table = np.full(256, default, dtype=np.uint8)
    for raw, value in mapping.items():
        table[raw] = value
    return table
