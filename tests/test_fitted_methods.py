"""SML and Mahalanobis: fitted statistics against numpy, refinements against hand-computed values,
fitted-state files and the prediction fingerprint."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from oodbench.methods import FitBatch, build
from oodbench.methods.mahalanobis import GaussianStatistics, min_mahalanobis
from oodbench.methods.sml import boundary_suppression, dilated_smoothing, standardized_max_logit
from oodbench.segmenters.base import PretrainedCfg

CFG3 = PretrainedCfg("conv3", num_classes=3)


def _sml(**kw):
    torch.manual_seed(0)
    return build("sml", segmenter=torch.nn.Conv2d(3, 3, 1), pretrained_cfg=CFG3, **kw)


def test_sml_statistics_match_numpy():
    m = _sml()
    xs = [torch.randn(2, 3, 5, 7), torch.randn(1, 3, 5, 7)]
    m.fit(FitBatch(x, None) for x in xs)
    with torch.no_grad():
        logits = torch.cat([m.model(x) for x in xs]).permute(0, 2, 3, 1).reshape(-1, 3).double().numpy()
    pred, mx = logits.argmax(1), logits.max(1)
    for c in range(3):
        assert m.count[c] == (pred == c).sum()
        if (pred == c).any():
            assert m.mean[c].item() == pytest.approx(mx[pred == c].mean(), abs=1e-6)
            assert m.std[c].item() == pytest.approx(mx[pred == c].std(), abs=1e-6)  # ddof = 0
    assert m.requires_fit is False and m.untrained_reason() is None


def test_sml_score_by_hand():
    m = _sml(boundary_suppression=False, dilated_smoothing=False)
    m.load_fitted({"mean": torch.tensor([1.0, 2.0, 3.0]), "std": torch.tensor([0.5, 1.0, 2.0]),
                   "count": torch.tensor([5.0, 5.0, 5.0])})
    logits = torch.tensor([[4.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 7.0]]).T.reshape(1, 3, 1, 3)
    # pixel 0: class 0, (4-1)/0.5 = 6; pixel 1: class 1, (1-2)/1 = -1; pixel 2: class 2, (7-3)/2 = 2
    assert m.score(logits).flatten().tolist() == [-6.0, 1.0, -2.0]
    assert standardized_max_logit(logits, m.mean, m.std).flatten().tolist() == [6.0, -1.0, 2.0]


def test_boundary_suppression_by_hand():
    # classes 0 | 1 split between columns 2 and 3; width 2 -> 3x3 window: columns 2 and 3 are boundary
    pred = torch.tensor([[0, 0, 0, 1, 1, 1]] * 3)[None]
    score = torch.arange(6.0).repeat(3, 1)[None] * 10
    out = boundary_suppression(score, pred, r0=2, dr=2, iterations=1)
    # column 2 takes the mean of its non-boundary 3x3 neighbours (column 1: 10), column 3 those of column 4 (40)
    assert out[0, 1].tolist() == [0.0, 10.0, 10.0, 40.0, 40.0, 50.0]
    assert torch.equal(out[0, :, [0, 1, 4, 5]], score[0, :, [0, 1, 4, 5]])


def test_dilated_smoothing_by_hand():
    x = torch.zeros(1, 73, 73, dtype=torch.float64)
    x[0, 36, 36] = 1.0
    out = dilated_smoothing(x, kernel_size=7, sigma=1.0, dilation=6)
    g = np.exp(-np.arange(-3, 4) ** 2 / 2.0)
    g /= g.sum()
    assert out[0, 36, 36].item() == pytest.approx(g[3] ** 2)
    assert out[0, 36, 42].item() == pytest.approx(g[3] * g[4])
    assert out[0, 42, 30].item() == pytest.approx(g[4] * g[2])
    assert out[0, 36, 37].item() == 0.0  # only multiples of the dilation are reached
    assert out.sum().item() == pytest.approx(1.0)


def test_gaussian_statistics_streaming_match_numpy():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(300, 4)) + rng.normal(size=4)
    y = rng.integers(0, 3, 300)
    y[::17] = 255  # ignored
    stats = GaussianStatistics(num_classes=4, dim=4)
    for chunk in np.array_split(np.arange(300), 3):
        stats.update(torch.from_numpy(f[chunk]), torch.from_numpy(y[chunk]))
    got = stats.finalize(ridge=1e-3)
    keep = y != 255
    fk, yk = f[keep], y[keep]
    means = np.stack([fk[yk == c].mean(0) for c in range(3)])
    centred = fk - means[yk]
    cov = centred.T @ centred / len(fk)
    np.testing.assert_allclose(got["means"][:3].numpy(), means, atol=1e-10)
    assert got["count"].tolist() == [float((yk == c).sum()) for c in range(3)] + [0.0]
    np.testing.assert_allclose(got["covariance"].numpy(), cov, atol=1e-10)
    prec = np.linalg.inv(cov + 1e-3 * np.trace(cov) / 4 * np.eye(4))
    np.testing.assert_allclose(got["precision"].numpy(), prec, rtol=1e-9, atol=1e-10)
    # score: brute-force min over the seen classes
    q = rng.normal(size=(1, 4, 2, 3))
    d = min_mahalanobis(torch.from_numpy(q), got["means"], got["precision"], got["count"] > 0)
    pts = q[0].reshape(4, -1).T
    want = np.array([min((p - mu) @ prec @ (p - mu) for mu in means) for p in pts]).reshape(2, 3)
    np.testing.assert_allclose(d[0].numpy(), want, rtol=1e-9)


def test_mahalanobis_fit_streams_batches():
    torch.manual_seed(0)
    m = build("mahalanobis", segmenter="deeplabv3plus_small")
    xs = [torch.randn(1, 3, 32, 64), torch.randn(1, 3, 32, 64)]
    ys = [torch.randint(0, 19, (1, 32, 64)), torch.randint(0, 19, (1, 32, 64))]
    with torch.no_grad():
        m.fit(FitBatch(x, y) for x, y in zip(xs, ys))
        feats = torch.cat([m.features(x)[0] for x in xs]).double()
    lab = torch.nn.functional.interpolate(torch.cat(ys)[:, None].float(), size=feats.shape[-2:], mode="nearest")
    f = feats.permute(0, 2, 3, 1).reshape(-1, feats.shape[1]).numpy()
    y = lab.flatten().long().numpy()
    for c in np.unique(y)[:3]:
        np.testing.assert_allclose(m.means[c].numpy(), f[y == c].mean(0), rtol=1e-5, atol=1e-6)
    anomaly, logits = m.predict(xs[0])
    assert anomaly.shape == (1, 32, 64) and logits.shape == (1, 19, 32, 64) and (anomaly >= 0).all()


def test_state_file_round_trip_and_refusals(tmp_path):
    from oodbench.fitting import StateError, load_state_into, save_state
    from oodbench.runner import method_fingerprint

    gen = torch.Generator().manual_seed(1)
    m = _sml()
    m.fit([FitBatch(torch.randn(1, 3, 4, 4, generator=gen), None)])
    path = tmp_path / "s.safetensors"
    sha = save_state(path, m, {"method": "sml", "checkpoint_sha256": None, "hparams": m.hparams()})
    fresh = _sml()
    assert fresh.untrained_reason() is not None and "oodbench fit --method sml" in fresh.untrained_reason()
    load_state_into(fresh, path, "sml")
    assert fresh.fitted_state_sha256 == sha and torch.equal(fresh.mean, m.mean)
    fp_a = method_fingerprint(fresh, "sml")
    assert fp_a["fitted_state_sha256"] == sha
    # another fitted state, same hparams: another fingerprint
    m.fit([FitBatch(torch.randn(1, 3, 4, 4, generator=gen), None)])
    other = tmp_path / "t.safetensors"
    save_state(other, m, {"method": "sml", "checkpoint_sha256": None, "hparams": m.hparams()})
    again = _sml()
    load_state_into(again, other, "sml")
    assert method_fingerprint(again, "sml") != fp_a and again.hparams() == fresh.hparams()
    with pytest.raises(StateError, match="fitted for method 'sml', not 'mahalanobis'"):
        maha = build("mahalanobis", segmenter="deeplabv3plus_small")
        load_state_into(maha, path, "mahalanobis")
    save_state(other, m, {"method": "sml", "checkpoint_sha256": "ab" * 32, "hparams": m.hparams()})
    with pytest.raises(StateError, match="segmenter checkpoint sha256"):
        load_state_into(_sml(), other, "sml")
