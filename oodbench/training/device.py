"""Device-dependent switches, each guarded by device type so the same code runs on CPU.

* :func:`autocast`: bf16 autocast on CUDA when enabled; on CPU only when asked for with
  ``cpu=True`` (``--amp-cpu``), otherwise a no-op context. The reference trains in fp32
  everywhere; bf16 keeps fp32's exponent range, so no loss scaling is needed. CPU bf16 stays
  opt-in because it is slower than fp32 on CPUs without bf16 units; its purpose is to run the
  mixed-precision path (dtype flow into losses, metrics and checkpoints) where no GPU is lent.
* :func:`loader_kwargs`: ``pin_memory`` only on CUDA, ``persistent_workers`` only with workers.
* :func:`maybe_channels_last`: the channels-last memory format only on CUDA.
"""
from __future__ import annotations

import contextlib
from typing import Any

import torch

__all__ = ["autocast", "loader_kwargs", "maybe_channels_last", "amp_dtype"]


def amp_dtype(device: torch.device, enabled: bool, cpu: bool = False) -> torch.dtype | None:
    """``torch.bfloat16`` when AMP applies (enabled, and CUDA -- or CPU with ``cpu``), else ``None`` (fp32)."""
    if not enabled:
        return None
    if device.type == "cuda" or (cpu and device.type == "cpu"):
        return torch.bfloat16
    return None


def autocast(device: torch.device, enabled: bool, cpu: bool = False) -> contextlib.AbstractContextManager:
    """bf16 autocast where :func:`amp_dtype` says AMP applies; otherwise a null context."""
    dtype = amp_dtype(device, enabled, cpu)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def loader_kwargs(device: torch.device, num_workers: int) -> dict[str, Any]:
    """DataLoader options that depend on the device and the worker count."""
    return {
        "num_workers": num_workers,
        "pin_memory": device.type == "cuda",
        "persistent_workers": False,  # workers are re-created per epoch with that epoch's seeds
    }


def maybe_channels_last(x: Any, device: torch.device) -> Any:
    """Convert a module or 4-D tensor to channels-last on CUDA; return it unchanged on CPU."""
    if device.type != "cuda":
        return x
    if isinstance(x, torch.nn.Module):
        return x.to(memory_format=torch.channels_last)
    if isinstance(x, torch.Tensor) and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x
