"""RPLNet and the ``rpl`` method on the tiny segmenter (CPU, fast) + the official WRN38 key layout."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from oodbench import methods, segmenters
from oodbench.methods.rpl.weights import has_projector, load_rpl_checkpoint, save_rpl_checkpoint
from oodbench.methods.rpl.method import RPL, blur_score, energy_score
from oodbench.methods.rpl.model import RPLNet
from oodbench.segmenters import CheckpointError

COMPAT = Path(__file__).resolve().parent / "data" / "compat"


def small_seg(seed: int = 0):
    torch.manual_seed(seed)
    seg = segmenters.build("deeplabv3plus_small")
    # non-trivial BN statistics so "copied including running stats" is a real check
    for m in seg.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    return seg.eval()


@pytest.fixture
def net():
    return RPLNet(small_seg(), projector=True)


@pytest.fixture
def x():
    return torch.randn(2, 3, 32, 64, generator=torch.Generator().manual_seed(7))


@pytest.mark.parametrize("manifest,projector", [("rpl_corocl_rev3", True), ("rpl_res", False)])
def test_wrn38_layout_is_the_official_rpl_file(manifest, projector):
    """State-dict keys, shapes, dtypes AND order equal rev3.pth / res.pth (meta device, no memory)."""
    m = json.loads((COMPAT / f"{manifest}.json").read_text())
    with torch.device("meta"):
        rpl = RPLNet(segmenters.build("deeplabv3plus_wrn38"), projector=projector, init=False)
    ours = [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in rpl.state_dict().items()]
    assert ours == m["keys"]


def test_layout_on_vainf_family_puts_block_before_classifier(net):
    keys = list(net.state_dict())
    rb = [k for k in keys if k.startswith("branch1.residual_block.")]
    assert {k.split(".")[2] for k in rb} == {"atten_aspp", "atten_aspp_final", "proj_head"}
    first_cls = keys.index(next(k for k in keys if k.startswith("branch1.classifier.")))
    assert keys.index(rb[-1]) < first_cls and keys.index(rb[0]) > keys.index("branch1.backbone.stem.0.weight")


def test_init_copies_context_and_kaiming_heads(net):
    seg, rb = net.branch1, net.residual_block
    ref, cp = seg.classifier.aspp.state_dict(), rb.atten_aspp.state_dict()
    assert ref.keys() == cp.keys() and all(torch.equal(ref[k], cp[k]) for k in ref)
    assert rb.atten_aspp is not seg.classifier.aspp
    assert rb.atten_aspp.convs[0][0].weight.data_ptr() != seg.classifier.aspp.convs[0][0].weight.data_ptr()
    w = rb.atten_aspp_final.weight
    assert w.shape == (seg.decoder_channels, seg.context_channels, 1, 1) and rb.atten_aspp_final.bias is None
    assert w.std().item() == pytest.approx(math.sqrt(2 / seg.context_channels), rel=0.1)  # kaiming, not zero
    assert torch.count_nonzero(rb.proj_head.proj[0].bias) == 0
    assert rb.proj_head.proj[0].weight.std().item() == pytest.approx(math.sqrt(2 / seg.context_channels), rel=0.1)


def test_init_generator_is_reproducible():
    a, b = RPLNet(small_seg(), init=False), RPLNet(small_seg(), init=False)
    a.init_from_segmenter(torch.Generator().manual_seed(3))
    b.init_from_segmenter(torch.Generator().manual_seed(3))
    assert torch.equal(a.residual_block.atten_aspp_final.weight, b.residual_block.atten_aspp_final.weight)


def test_modes_and_freezing(net, x):
    net.train()
    assert net.training and net.residual_block.training
    assert all(m.training for m in net.residual_block.modules())
    outside = [m for n, m in net.branch1.named_modules() if not n.startswith("residual_block")]
    assert not any(m.training for m in outside)
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in net.named_parameters() if n.startswith("branch1.residual_block.")}
    net.eval()
    assert not any(m.training for m in net.modules())


def test_forward_outputs_and_gradients_reach_only_the_block(net, x):
    seg = net.branch1
    frozen_stats = {k: v.clone() for k, v in seg.state_dict().items() if not k.startswith("residual_block")}
    block_var = net.residual_block.atten_aspp.convs[0][1].running_var.clone()
    net.train()
    out1, out2, proj = net(x)
    assert out1.shape == out2.shape == (2, 19, 32, 64)
    assert proj.shape == (2, seg.decoder_channels, 32 // seg.decoder_stride, 64 // seg.decoder_stride)
    assert not torch.allclose(out1, out2)
    (out2.square().mean() + proj.square().mean()).backward()
    for n, p in net.named_parameters():
        assert (p.grad is not None) == n.startswith("branch1.residual_block."), n
    assert not out1.requires_grad  # out1 does not depend on anything trainable
    for k, v in seg.state_dict().items():  # frozen BN statistics did not move
        if k in frozen_stats:
            assert torch.equal(v, frozen_stats[k]), k
    assert not torch.equal(net.residual_block.atten_aspp.convs[0][1].running_var, block_var)
    net.eval()
    with torch.no_grad():
        e1, e2, eproj = net(x)
        torch.testing.assert_close(e1, seg(x))  # out1 is exactly the closed-set forward
    assert eproj is None


def test_out2_equals_manual_residual_formula(net, x):
    net.eval()
    seg, rb = net.branch1, net.residual_block
    with torch.no_grad():
        low, deep = seg.features(x)
        dec0 = seg.decoder_input(low, seg.context(deep))
        r = torch.nn.functional.interpolate(rb.atten_aspp(deep), size=dec0.shape[-2:], mode="bilinear", align_corners=False)
        manual = torch.nn.functional.interpolate(seg.classify(dec0 + rb.atten_aspp_final(r)), size=x.shape[-2:],
                                                 mode="bilinear", align_corners=False)
        torch.testing.assert_close(net(x)[1], manual)


def test_trainable_parameter_groups(net):
    groups = net.trainable_parameters(lr=7.5e-5)
    assert [g["name"] for g in groups] == ["rpl_head", "residual"]
    assert groups[0]["params"] == [net.residual_block.atten_aspp_final.weight]
    assert groups[0]["lr"] == pytest.approx(7.5e-4) and groups[1]["lr"] == pytest.approx(7.5e-5)
    ids = {id(p) for g in groups for p in g["params"]}
    assert ids == {id(p) for p in net.parameters() if p.requires_grad}
    opt = torch.optim.Adam(groups)
    assert opt.param_groups[0]["lr_mult"] == 10.0  # extra keys survive for the scheduler


def test_projector_false_has_no_proj_head(x):
    net = RPLNet(small_seg(), projector=False)
    assert not any("proj_head" in k for k in net.state_dict())
    net.train()
    assert net(x)[2] is None


def test_rpl_checkpoint_roundtrip_and_projector_autodetect(tmp_path, net, x):
    path = save_rpl_checkpoint(net, tmp_path / "rpl.pth", epoch=1, iteration=5)
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"model", "epoch", "iteration"} and has_projector(raw["model"])
    method = methods.build("rpl", segmenter="deeplabv3plus_small", checkpoint=str(path))
    assert method.requires_fit is False and method.net.projector is True
    assert method.checkpoint_sha256 is not None and len(method.checkpoint_sha256) == 64
    net.eval()
    with torch.no_grad():
        ref1, ref2, _ = net(x)
    anomaly, logits = method.predict(x)
    torch.testing.assert_close(logits, ref1)
    torch.testing.assert_close(anomaly, blur_score(energy_score(ref2)))
    # a projector mismatch is a clear error, not a silent partial load
    other = RPLNet(small_seg(), projector=False)
    with pytest.raises(CheckpointError, match="projector"):
        load_rpl_checkpoint(other, path)
    # res-style file (no projector) is auto-detected
    path2 = save_rpl_checkpoint(other, tmp_path / "res.safetensors")
    assert methods.build("rpl", segmenter="deeplabv3plus_small", checkpoint=str(path2)).net.projector is False


def test_segmenter_checkpoint_initialises_the_block(tmp_path, x):
    seg = small_seg(seed=4)
    path = tmp_path / "closed.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in seg.state_dict().items()}}, path)
    for kwargs in ({"checkpoint": str(path)}, {"segmenter_checkpoint": str(path)}):
        method = RPL(segmenter="deeplabv3plus_small", **kwargs)
        assert method.requires_fit is True
        net = method.net
        cp, ref = net.residual_block.atten_aspp.state_dict(), seg.classifier.aspp.state_dict()
        assert all(torch.equal(cp[k], ref[k]) for k in ref)
        with torch.no_grad():
            torch.testing.assert_close(method.predict(x)[1], seg(x))
        assert not any(t.is_meta for t in net.state_dict().values())
        assert {n for n, p in net.named_parameters() if p.requires_grad} == {
            n for n, _ in net.named_parameters() if n.startswith("branch1.residual_block.")}


def test_wrong_rpl_checkpoint_fails_with_report(tmp_path, net):
    sd = net.state_dict()
    sd.pop("branch1.residual_block.atten_aspp_final.weight")
    torch.save({"model": sd}, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match=r"broken\.pth.*\n.*missing in checkpoint \(1\)"):
        methods.build("rpl", segmenter="deeplabv3plus_small", checkpoint=str(tmp_path / "broken.pth"))


def test_method_without_checkpoint_and_hparams(x):
    torch.manual_seed(0)
    m = methods.build("rpl", segmenter="deeplabv3plus_small")
    assert m.requires_fit is True and m.checkpoint_sha256 is None
    assert m.semantic_label_space == "cityscapes19"
    assert m.model.pretrained_cfg.name == "deeplabv3plus_small"
    hp = m.hparams()
    assert hp["blur"] is True and hp["blur_kernel"] == 7 and hp["blur_sigma"] == 1.0
    anomaly, logits = m.predict(x)
    assert anomaly.shape == (2, 32, 64) and logits.shape == (2, 19, 32, 64) and anomaly.dtype == torch.float32
    m.net.train()  # predict puts a training network back into eval mode
    m.predict(x)
    assert not m.net.training


def numpy_blur_reflect(score: np.ndarray, k: int = 7, sigma: float = 1.0) -> np.ndarray:
    """Independent float64 separable Gaussian with reflect padding (golden README cross-check)."""
    t = np.arange(k) - (k - 1) / 2
    g = np.exp(-0.5 * (t / sigma) ** 2)
    g /= g.sum()
    p = (k - 1) // 2
    a = np.pad(score.astype(np.float64), p, mode="reflect")
    a = sum(g[i] * a[i:i + score.shape[0], :] for i in range(k))
    return sum(g[i] * a[:, i:i + score.shape[1]] for i in range(k))


def test_score_is_blurred_negative_logsumexp():
    logits = torch.randn(2, 19, 20, 30, generator=torch.Generator().manual_seed(0)) * 8
    energy = energy_score(logits)
    torch.testing.assert_close(energy, -torch.log(torch.exp(logits.double()).sum(1)).float())
    blurred = blur_score(energy)
    for i in range(2):
        np.testing.assert_allclose(blurred[i].numpy(), numpy_blur_reflect(energy[i].numpy()), atol=1e-5)
    assert not torch.allclose(blurred, energy)  # the blur does something
    assert not torch.allclose(energy, -logits.amax(1), atol=1e-3)  # logsumexp, not max


def test_fit_requires_a_config():
    m = methods.build("rpl", segmenter="deeplabv3plus_small")
    with pytest.raises(ValueError, match="training config"):
        m.fit()
    assert m.requires_fit is True
