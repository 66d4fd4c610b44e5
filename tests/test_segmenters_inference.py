"""Inference protocols on CPU: full resolution, sliding window (+ flip), amp/channels_last handling."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from oodbench import segmenters
from oodbench.segmenters.inference import autocast, predict_full, predict_sliding, prepare_model, to_device


def pointwise_model(classes: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Conv2d(3, classes, 1).eval()  # receptive field 1: windows cannot change anything


def window_count(h: int, w: int, crop: int, stride_rate: float) -> torch.Tensor:
    """Independent count of windows covering each pixel (pad, enumerate, crop back)."""
    ph, pw = max(h, crop), max(w, crop)
    top, left = (ph - h) // 2, (pw - w) // 2
    stride = math.ceil(crop * stride_rate)
    cnt = torch.zeros(ph, pw)
    rows = [min(i * stride + crop, ph) - crop for i in range(math.ceil((ph - crop) / stride) + 1)]
    cols = [min(i * stride + crop, pw) - crop for i in range(math.ceil((pw - crop) / stride) + 1)]
    for r in rows:
        for c in cols:
            cnt[r:r + crop, c:c + crop] += 1
    return cnt[top:top + h, left:left + w]


@pytest.mark.parametrize("h,w", [(50, 130), (20, 70), (24, 24), (33, 33)])
@pytest.mark.parametrize("flip", [False, True])
def test_sliding_equals_full_for_pointwise_model(h, w, flip):
    model = pointwise_model()
    x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(1))
    full = predict_full(model, x)
    mean = predict_sliding(model, x, crop=32, stride_rate=1 / 3, flip=flip, reduce="mean", windows_per_batch=3)
    torch.testing.assert_close(mean, full * (2 if flip else 1), rtol=1e-5, atol=1e-5)
    summed = predict_sliding(model, x, crop=32, stride_rate=1 / 3, flip=flip, windows_per_batch=5)
    cnt = window_count(h, w, 32, 1 / 3)
    torch.testing.assert_close(summed, full * cnt * (2 if flip else 1), rtol=1e-5, atol=1e-5)
    assert summed.dtype == torch.float32 and summed.shape == (2, 4, h, w)


def reference_sliding(model, x, crop, stride_rate, flip):
    """Per-image, per-window loop written straight from the protocol (no batching)."""
    outs = []
    for img in x:
        h, w = img.shape[-2:]
        ph, pw = max(h, crop), max(w, crop)
        top, left = (ph - h) // 2, (pw - w) // 2
        pad = torch.zeros(3, ph, pw)
        pad[:, top:top + h, left:left + w] = img
        stride = math.ceil(crop * stride_rate)
        acc = None
        for i in range(math.ceil((ph - crop) / stride) + 1):
            for j in range(math.ceil((pw - crop) / stride) + 1):
                r = min(i * stride + crop, ph) - crop
                c = min(j * stride + crop, pw) - crop
                tile = pad[None, :, r:r + crop, c:c + crop]
                with torch.no_grad():
                    s = model(tile)[0]
                    if flip:
                        s = s + model(tile.flip(-1))[0].flip(-1)
                if acc is None:
                    acc = torch.zeros(s.shape[0], ph, pw)
                acc[:, r:r + crop, c:c + crop] += s
        outs.append(acc[:, top:top + h, left:left + w])
    return torch.stack(outs)


def test_sliding_matches_reference_loop_on_real_segmenter():
    torch.manual_seed(0)
    model = segmenters.build("deeplabv3plus_small").eval()
    x = torch.randn(2, 3, 40, 72, generator=torch.Generator().manual_seed(2))
    got = predict_sliding(model, x, crop=32, stride_rate=1 / 3, flip=True, windows_per_batch=4)
    ref = reference_sliding(model, x, 32, 1 / 3, True)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(got, 2 * window_count(40, 72, 32, 1 / 3) * predict_full(model, x), atol=1e-2)


def test_flip_symmetry_single_window():
    torch.manual_seed(0)
    model = segmenters.build("deeplabv3plus_small").eval()
    x = torch.randn(1, 3, 28, 24, generator=torch.Generator().manual_seed(4))  # symmetric 4/4 column pad
    a = predict_sliding(model, x, crop=32, flip=True)
    b = predict_sliding(model, x.flip(-1), crop=32, flip=True)
    torch.testing.assert_close(b, a.flip(-1), rtol=1e-4, atol=1e-4)


def test_tuple_outputs_select_first_and_full_keeps_tuple():
    base = pointwise_model()

    class Pair(nn.Module):
        def forward(self, x):
            y = base(x)
            return y, -y, None

    x = torch.randn(1, 3, 20, 20)
    out = predict_full(Pair(), x)
    assert isinstance(out, tuple) and out[2] is None
    torch.testing.assert_close(out[1], -base(x))
    torch.testing.assert_close(predict_sliding(Pair(), x, crop=32, flip=False), base(x).detach())


def test_channels_last_gives_the_same_logits():
    torch.manual_seed(0)
    model = segmenters.build("deeplabv3plus_small").eval()
    x = torch.randn(2, 3, 32, 48)
    ref = predict_full(model, x)
    prepare_model(model, "cpu", channels_last=True)
    assert model.backbone.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(predict_full(model, x, channels_last=True), ref, rtol=1e-4, atol=1e-4)


def test_amp_on_cpu_bf16_autocasts_and_fp16_warns():
    model = pointwise_model()
    x = torch.randn(1, 3, 8, 8)
    seen = []
    hook = model.register_forward_hook(lambda m, i, o: seen.append(torch.get_autocast_dtype("cpu")
                                                               if torch.is_autocast_enabled("cpu") else None))
    out = predict_full(model, x, amp="bf16")                 # CPU autocast supports bfloat16
    assert seen[-1] == torch.bfloat16 and out.dtype == torch.float32
    torch.testing.assert_close(out, predict_full(model, x), rtol=2e-2, atol=2e-2)
    with pytest.warns(RuntimeWarning, match="ignored on cpu"):
        out = predict_full(model, x, amp="fp16")
    assert seen[-1] is None
    torch.testing.assert_close(out, predict_full(model, x))
    hook.remove()
    with pytest.raises(ValueError, match="amp must be"):
        autocast("cpu", "int8")


def test_argument_errors_and_to_device():
    model = pointwise_model()
    with pytest.raises(ValueError, match="reduce"):
        predict_sliding(model, torch.zeros(1, 3, 8, 8), reduce="max")
    with pytest.raises(ValueError, match=r"\[B,3,H,W\]"):
        predict_sliding(model, torch.zeros(3, 8, 8))
    x = torch.zeros(2, 3)
    assert to_device(x, "cpu") is x


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (the AMP path is CUDA-only)")
def test_cuda_amp_bf16_close_to_fp32():  # pragma: no cover - runs on GPU machines
    torch.manual_seed(0)
    model = prepare_model(segmenters.build("deeplabv3plus_small"), "cuda", channels_last=True)
    x = to_device(torch.randn(2, 3, 64, 96), "cuda")
    ref = predict_full(model, x)
    out = predict_full(model, x, amp="bf16", channels_last=True)
    assert out.dtype == torch.float32
    assert (out - ref).abs().max() <= 5e-2 * ref.abs().max()
