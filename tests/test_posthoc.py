"""Post-hoc scores against hand-computed values, and registry-wide conformance (timm style)."""
from __future__ import annotations

import math

import pytest
import torch

from oodbench.methods import METHODS, PostHocMethod, build


class Identity(torch.nn.Module):
    def forward(self, x):
        return x


LOGITS = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]]).T.reshape(1, 3, 1, 2)


def test_msp():
    m = build("msp", segmenter=Identity())
    p0 = math.exp(2) / (math.exp(2) + 1 + math.exp(-1))
    s = m.score(LOGITS)
    assert s.shape == (1, 1, 2)
    assert s[0, 0, 0].item() == pytest.approx(-p0)
    assert s[0, 0, 1].item() == pytest.approx(-1 / 3)


def test_energy_with_temperature():
    m = build("energy", segmenter=Identity(), temperature=2.0)
    expected = -2.0 * math.log(math.exp(1.0) + math.exp(0.0) + math.exp(-0.5))
    assert m.score(LOGITS)[0, 0, 0].item() == pytest.approx(expected, rel=1e-6)
    assert m.hparams()["temperature"] == 2.0
    with pytest.raises(ValueError, match="temperature must be > 0"):
        build("energy", segmenter=Identity(), temperature=0)


def test_energy_is_stable_for_huge_logits():
    m = build("energy", segmenter=Identity())
    s = m.score(torch.full((1, 19, 2, 2), 1e30))
    assert torch.isfinite(s).all()


def test_maxlogit_and_entropy():
    assert build("maxlogit", segmenter=Identity()).score(LOGITS)[0, 0, 0].item() == -2.0
    ent = build("entropy", segmenter=Identity()).score(LOGITS)
    assert ent[0, 0, 1].item() == pytest.approx(math.log(3), rel=1e-6)
    # saturated softmax: entropy 0, not NaN
    assert build("entropy", segmenter=Identity()).score(torch.tensor([[[[1e4]], [[0.0]]]]))[0, 0, 0].item() == 0.0


POSTHOC = [n for n in METHODS.names() if issubclass(METHODS.get(n).obj, PostHocMethod)]


@pytest.mark.parametrize("name", POSTHOC)
def test_posthoc_conformance(name):
    """Every post-hoc method: shape [B,H,W], finite, higher = more anomalous on a clear case."""
    from oodbench.methods import FitBatch

    m = build(name, segmenter=Identity())
    if m.requires_fit:  # fitted post-hoc methods (sml): statistics of random training logits first
        m.fit([FitBatch(torch.randn(4, 19, 8, 16, generator=torch.Generator().manual_seed(0)), None)])
        assert m.requires_fit is False
    logits = torch.randn(2, 19, 8, 16)
    confident = torch.zeros(1, 19, 1, 1)
    confident[0, 3] = 20.0
    flat = torch.zeros(1, 19, 1, 1)
    anomaly, out = m.predict(logits)
    assert anomaly.shape == (2, 8, 16) and out.shape == logits.shape
    assert torch.isfinite(anomaly).all()
    assert m.score(flat).item() > m.score(confident).item()
