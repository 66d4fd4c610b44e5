"""Segmenter architectures: registry, official key layouts, decomposition, configs (CPU, fast).

Key layouts are checked on the ``meta`` device (no memory, no init) against the compat manifests
kept in ``tests/data/compat`` (copies of ``../shared/compat``), entry by entry and in order.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from oodbench import segmenters
from oodbench.segmenters import SEGMENTERS, DeepLabV3PlusBase, PretrainedCfg

COMPAT = Path(__file__).resolve().parent / "data" / "compat"

NAMES = ["deeplabv3plus_wrn38", "deeplabv3plus_mobilenetv2", "deeplabv3plus_resnet50",
         "deeplabv3plus_resnet101", "deeplabv3plus_small"]

MANIFEST_OF = {
    "nvidia_wrn38_deeplabv3plus_cityscapes_best": "deeplabv3plus_wrn38",
    "vainf_deeplabv3plus_mobilenet_os16": "deeplabv3plus_mobilenetv2",
    "vainf_deeplabv3plus_resnet101_os16": "deeplabv3plus_resnet101",
}


def manifest_entries(name: str) -> list[tuple[str, tuple[int, ...], str]]:
    m = json.loads((COMPAT / f"{name}.json").read_text())
    prefix = m["wrapper"]["key_prefix"]
    drop = set(m["wrapper"]["extra_non_model_keys"])
    return [(k[len(prefix):], tuple(s), dt) for k, s, dt in m["keys"] if k not in drop]


def layout(module: torch.nn.Module) -> list[tuple[str, tuple[int, ...], str]]:
    return [(k, tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in module.state_dict().items()]


def test_registry_has_every_name():
    assert set(NAMES) <= set(segmenters.list_segmenters())
    assert segmenters.list_segmenters("*resnet*") == ["deeplabv3plus_resnet101", "deeplabv3plus_resnet50"]


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(KeyError, match="deeplabv3plus_small"):
        segmenters.build("deeplabv3plus_nope")


@pytest.mark.parametrize("manifest,name", sorted(MANIFEST_OF.items()))
def test_state_dict_layout_equals_official_manifest(manifest, name):
    with torch.device("meta"):
        model = segmenters.build(name)
    assert layout(model) == manifest_entries(manifest)


def test_resnet50_layout_is_resnet101_minus_blocks():
    """ResNet50 has no Cityscapes manifest: same keys as ResNet101 except layer3 blocks 6..22."""
    with torch.device("meta"):
        r50 = layout(segmenters.build("deeplabv3plus_resnet50"))
    r101 = manifest_entries("vainf_deeplabv3plus_resnet101_os16")
    extra = [e for e in r101 if e[0].startswith("backbone.layer3.")
             and int(e[0].split(".")[2]) >= 6]
    assert r50 == [e for e in r101 if e not in extra]


@pytest.mark.parametrize("name", NAMES)
def test_common_decomposition_and_config(name):
    with torch.device("meta"):
        model = segmenters.build(name)
    assert isinstance(model, DeepLabV3PlusBase)
    cfg = model.pretrained_cfg
    assert isinstance(cfg, PretrainedCfg) and cfg.name == name
    assert cfg.num_classes == model.num_classes == 19
    assert len(cfg.label_names) == len(cfg.label_ids) == 19 and cfg.label_names[0] == "road"
    assert cfg.mean == (0.485, 0.456, 0.406) and cfg.std == (0.229, 0.224, 0.225)
    assert cfg.align_corners == model.align_corners
    assert cfg.output_stride == model.output_stride and cfg.decoder_stride == model.decoder_stride
    assert model.context_channels == 256 or name == "deeplabv3plus_small"
    assert model.checkpoint_sha256 is None
    mods = model.context_modules()
    assert mods and all(isinstance(m, torch.nn.Module) for m in mods.values())
    assert model.residual_anchor in dict(model.named_children())


def test_family_specifics():
    with torch.device("meta"):
        nv = segmenters.build("deeplabv3plus_wrn38")
        vf = segmenters.build("deeplabv3plus_mobilenetv2")
        r8 = segmenters.build("deeplabv3plus_resnet101", output_stride=8)
    assert (nv.output_stride, nv.decoder_stride, nv.decoder_channels, nv.align_corners) == (8, 2, 304, True)
    assert nv.aspp.rates == (12, 24, 36)
    assert set(nv.context_modules()) == {"aspp", "bot_aspp"}
    assert nv.pretrained_cfg.checkpoint_file == "cityscapes_best.pth"
    assert (vf.output_stride, vf.decoder_stride, vf.decoder_channels, vf.align_corners) == (16, 4, 304, False)
    assert [c[0].dilation for c in vf.classifier.aspp.convs[1:4]] == [(6, 6), (12, 12), (18, 18)]
    assert set(vf.context_modules()) == {"aspp"}
    assert [c[0].dilation for c in r8.classifier.aspp.convs[1:4]] == [(12, 12), (24, 24), (36, 36)]
    assert r8.backbone.layer3[1].conv2.dilation == (2, 2) and r8.backbone.layer4[1].conv2.dilation == (4, 4)
    with pytest.raises(ValueError, match="output_stride=8"):
        segmenters.build("deeplabv3plus_wrn38", output_stride=16)
    with pytest.raises(ValueError, match="output_stride"):
        segmenters.build("deeplabv3plus_mobilenetv2", output_stride=32)


@pytest.mark.parametrize("output_stride", [8, 16])
def test_small_decomposition_shapes_and_forward(output_stride):
    torch.manual_seed(0)
    model = segmenters.build("deeplabv3plus_small", output_stride=output_stride).eval()
    n_params = sum(p.numel() for p in model.parameters())
    assert 1e5 < n_params < 1e6, n_params
    x = torch.randn(2, 3, 64, 96)
    low, deep = model.features(x)
    assert low.shape[-2:] == (64 // 4, 96 // 4)
    assert deep.shape[-2:] == (64 // output_stride, 96 // output_stride)
    ctx = model.context(deep)
    assert ctx.shape == (2, model.context_channels, *deep.shape[-2:])
    dec0 = model.decoder_input(low, ctx)
    assert dec0.shape == (2, model.decoder_channels, *low.shape[-2:])
    logits = model(x)
    assert logits.shape == (2, 19, 64, 96)
    manual = torch.nn.functional.interpolate(model.classify(dec0), size=(64, 96), mode="bilinear", align_corners=False)
    torch.testing.assert_close(logits, manual, rtol=0, atol=0)
    # context(deep, modules=...) really uses the given modules
    zero = {k: torch.nn.Identity() for k in model.context_modules()}
    assert torch.equal(model.context(deep, zero), deep)


def test_small_trains():
    torch.manual_seed(0)
    model = segmenters.build("deeplabv3plus_small", num_classes=3).train()
    assert model.pretrained_cfg.label_names == ("class_0", "class_1", "class_2")
    x, y = torch.randn(2, 3, 32, 64), torch.randint(0, 3, (2, 32, 64))
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_mobilenet_forward_os8_small_input():
    torch.manual_seed(0)
    model = segmenters.build("deeplabv3plus_mobilenetv2", output_stride=8).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 40, 56))
    assert out.shape == (1, 19, 40, 56) and torch.isfinite(out).all()


def test_pretrained_cfg_validates_label_counts():
    with pytest.raises(ValueError, match="label names"):
        PretrainedCfg(name="x", num_classes=2, label_names=("a",), label_ids=(0, 1))
    d = PretrainedCfg(name="x").to_dict()
    assert d["num_classes"] == 19 and d["sha256"] is None and d["label_ids"][0] == 7


def test_get_pretrained_cfg_without_building_weights():
    cfg = segmenters.get_pretrained_cfg("deeplabv3plus_wrn38")
    assert cfg.checkpoint_file == "cityscapes_best.pth" and cfg.output_stride == 8 and cfg.align_corners
    assert cfg.sha256 is None  # unknown, never invented
    assert segmenters.get_pretrained_cfg("deeplabv3plus_mobilenetv2", output_stride=8).output_stride == 8
    assert segmenters.get_pretrained_cfg("deeplabv3plus_resnet50").checkpoint_file is None


def test_registered_names_are_in_registry_object():
    for name in NAMES:
        assert name in SEGMENTERS
