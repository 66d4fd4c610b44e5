"""Inference protocols: full-resolution single scale (OoD) and sliding window + flip (closed-set mIoU).

* :func:`predict_full` -- one forward at native resolution, no flip: the OoD protocol of RPL and
  the anomaly benchmarks (``docs/rpl-official.md`` §7, §12.12).
* :func:`predict_sliding` -- RPL's Cityscapes mIoU evaluator (``yyliu01/RPL:rpl_corocl.code/
  engine/evaluator.py`` ``SlidingEval``, from TorchSemiSeg; §7): scale 1.0, crop ``c`` = 1024,
  stride ``s = ceil(c * stride_rate)`` with ``stride_rate = 1/3``, horizontal flip. Per image:

  - if ``max(H, W) <= c``: zero-pad (centred) to ``c x c``, predict, crop back;
  - else zero-pad (centred) each side shorter than ``c`` up to ``c`` (giving ``H' x W'``); windows
    start at ``i*s`` for ``i < ceil((H'-c)/s) + 1`` (likewise for columns), clipped so that the
    window ends inside the image (``start = min(i*s + c, H') - c``);
  - each window's logits, plus the h-flipped logits of the h-flipped window when ``flip``, are
    **summed** into the canvas (``reduce="sum"``, the official choice: the argmax equals that of
    the average); ``reduce="mean"`` divides by the per-pixel window count instead;
  - the padding is cropped off. Padding is applied to the *normalised* image, so 0 is the mean
    colour.

Both run batched, under ``torch.autocast`` (bf16/fp16) on CUDA when ``amp`` is given, with an
optional ``channels_last`` input, and make no host synchronisation (no ``.item()``/``.cpu()``).
On CPU ``amp`` is refused with a warning and float32 is used.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from oodbench.errors import UsageError

__all__ = ["AMP_DTYPES", "autocast", "prepare_model", "to_device", "predict_full", "predict_sliding"]

AMP_DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}


def autocast(device: torch.device | str, amp: str | torch.dtype | None) -> contextlib.AbstractContextManager:
    """The one autocast rule of inference (``oodbench run`` and :func:`predict_full` use it).

    ``amp`` in {"bf16", "fp16"} (or the dtype): bf16 autocast on CUDA and on CPU (PyTorch's CPU
    autocast supports bfloat16, which lets CI exercise the mixed-precision path); fp16 only on CUDA
    (CPU autocast has no float16 matmuls worth using; a warning says it is ignored). ``None``: no-op.
    """
    if amp is None:
        return contextlib.nullcontext()
    dtype = AMP_DTYPES.get(amp) if isinstance(amp, str) else amp
    if dtype not in (torch.bfloat16, torch.float16):
        raise UsageError(f"amp must be one of {sorted(AMP_DTYPES)} or None, got {amp!r}")
    device = torch.device(device)
    if device.type == "cuda" or (device.type == "cpu" and dtype == torch.bfloat16):
        return torch.autocast(device_type=device.type, dtype=dtype)
    warnings.warn(f"amp={amp!r} ignored on {device.type}: inference runs in float32", RuntimeWarning, stacklevel=3)
    return contextlib.nullcontext()


def prepare_model(model: nn.Module, device: torch.device | str | None = None, channels_last: bool = False) -> nn.Module:
    """Move ``model`` to ``device``, switch it to eval mode and (optionally) channels_last memory format."""
    if device is not None:
        model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model.eval()


def to_device(x: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """Copy a CPU batch to ``device``; through pinned memory and ``non_blocking`` for CUDA."""
    device = torch.device(device)
    if device.type == "cuda" and x.device.type == "cpu":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


def _first(out: Any) -> torch.Tensor:
    """Closed-set logits of a model output (a tensor, or ``out1`` of RPL's ``(out1, out2, proj)``)."""
    return out[0] if isinstance(out, (tuple, list)) else out


def _float(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, (tuple, list)):
        return type(out)(_float(o) for o in out)
    return out


@torch.inference_mode()
def predict_full(model: nn.Module, x: torch.Tensor, amp: str | torch.dtype | None = None,
                 channels_last: bool = False) -> Any:
    """One forward of ``model`` on the whole normalised batch ``x [B,3,H,W]`` (no grad).

    Returns the model's output with floating tensors in float32 (a tensor, or a tuple for RPL).
    """
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(x.device, amp):
        out = model(x)
    return _float(out)


def _pad_centred(x: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Zero-pad ``x`` to at least ``h x w``, centred (top/left get the floor half); return margins."""
    ph, pw = max(h - x.shape[-2], 0), max(w - x.shape[-1], 0)
    m = (ph // 2, ph - ph // 2, pw // 2, pw - pw // 2)  # top, bottom, left, right
    if ph or pw:
        x = F.pad(x, (m[2], m[3], m[0], m[1]), value=0.0)
    return x, m


def _window_starts(size: int, crop: int, stride: int) -> list[int]:
    n = int(math.ceil((size - crop) / stride)) + 1
    return [min(i * stride + crop, size) - crop for i in range(n)]


@torch.inference_mode()
def predict_sliding(
    model: nn.Module,
    x: torch.Tensor,
    crop: int = 1024,
    stride_rate: float = 1 / 3,
    flip: bool = True,
    amp: str | torch.dtype | None = None,
    channels_last: bool = False,
    windows_per_batch: int = 4,
    reduce: str = "sum",
    select: Callable[[Any], torch.Tensor] = _first,
) -> torch.Tensor:
    """Sliding-window (+ flip) logits ``[B,C,H,W]`` (float32) of a normalised batch (see module doc).

    Args:
        model: maps ``[N,3,c,c]`` to logits at input size (or a tuple; ``select`` picks the logits,
            default the first element, i.e. RPL's closed-set ``out1``).
        crop, stride_rate, flip: the protocol (RPL: 1024, 1/3, True).
        windows_per_batch: windows (of all images) per forward; flipped copies are batched too.
        reduce: ``"sum"`` (official) or ``"mean"`` over overlapping windows.
    """
    if reduce not in ("sum", "mean"):
        raise UsageError(f"reduce must be 'sum' or 'mean', got {reduce!r}")
    if not 0 < stride_rate <= 1:
        raise UsageError(f"stride_rate must be in (0, 1], got {stride_rate}")
    if x.ndim != 4:
        raise ValueError(f"predict_sliding expects [B,3,H,W], got shape {tuple(x.shape)}")
    b = x.shape[0]
    # an image no larger than the crop is padded to one window; otherwise sides < crop are padded
    xp, m = _pad_centred(x, crop, crop)
    stride = int(math.ceil(crop * stride_rate))
    ph, pw = xp.shape[-2:]
    boxes = [(r, c) for r in _window_starts(ph, crop, stride) for c in _window_starts(pw, crop, stride)]
    canvas: torch.Tensor | None = None
    count = torch.zeros((1, 1, ph, pw), device=x.device, dtype=torch.float32)
    jobs = [(i, r, c) for (r, c) in boxes for i in range(b)]
    per = max(1, int(windows_per_batch))
    for k in range(0, len(jobs), per):
        chunk = jobs[k:k + per]
        tiles = torch.stack([xp[i, :, r:r + crop, c:c + crop] for i, r, c in chunk])
        if flip:
            tiles = torch.cat([tiles, tiles.flip(-1)])
        if channels_last:
            tiles = tiles.contiguous(memory_format=torch.channels_last)
        with autocast(x.device, amp):
            logits = select(model(tiles)).float()
        if flip:
            n = len(chunk)
            logits = logits[:n] + logits[n:].flip(-1)
        if canvas is None:
            canvas = torch.zeros((b, logits.shape[1], ph, pw), device=x.device, dtype=torch.float32)
        for j, (i, r, c) in enumerate(chunk):
            canvas[i, :, r:r + crop, c:c + crop] += logits[j]
    for r, c in boxes:
        count[..., r:r + crop, c:c + crop] += 1
    assert canvas is not None
    if reduce == "mean":
        canvas = canvas / count
    return canvas[..., m[0]:ph - m[1], m[2]:pw - m[3]]
