"""Checkpoint loading: official wrappers, strict key report, pickle refusal, sha256, recipe v2."""
from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from oodbench import segmenters
from oodbench.segmenters.weights import (
    CheckpointError,
    extract_state_dict,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from oodbench.segmenters.recipe import load_manifest, recipe_check_values, recipe_checkpoint, recipe_state_dict

COMPAT = Path(__file__).resolve().parent / "data" / "compat"


@pytest.fixture
def small():
    torch.manual_seed(0)
    return segmenters.build("deeplabv3plus_small").eval()


@pytest.fixture
def x():
    return torch.randn(1, 3, 32, 48, generator=torch.Generator().manual_seed(3))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def nvidia_style(sd):
    """{'state_dict'} + 'module.' + the criterion weight, as NVIDIA's cityscapes_best.pth."""
    inner = OrderedDict([("module.criterion.nll_loss.weight", torch.ones(19))])
    inner.update((f"module.{k}", v) for k, v in sd.items())
    return {"state_dict": inner, "epoch": 3, "mean_iu": np.float64(0.9069), "command": "train.py --cv 2"}


@pytest.mark.parametrize("wrap", ["plain", "nvidia", "vainf", "rpl_model", "safetensors"])
def test_official_wrappers_roundtrip(tmp_path, small, x, wrap):
    sd = small.state_dict()
    path = tmp_path / ("w.safetensors" if wrap == "safetensors" else "w.pth")
    if wrap == "plain":
        torch.save(sd, path)
    elif wrap == "nvidia":
        torch.save(nvidia_style(sd), path)
    elif wrap == "vainf":
        torch.save({"model_state": sd, "cur_itrs": 10, "best_score": np.float64(0.72),
                    "optimizer_state": {"state": {}, "param_groups": [{"lr": 0.01}]}}, path)
    elif wrap == "rpl_model":
        torch.save({"model": sd, "epoch": 1, "iteration": 2}, path)
    else:
        save_checkpoint(small, path)
    torch.manual_seed(1)
    other = segmenters.build("deeplabv3plus_small").eval()
    with torch.no_grad():
        assert not torch.equal(other(x), small(x))
    report = load_checkpoint(other, path)
    assert report.ok and report.loaded == len(sd)
    assert report.sha256 == sha(path) == other.checkpoint_sha256
    if wrap == "nvidia":
        assert report.wrappers == ["state_dict"]
        assert report.dropped == ["criterion.nll_loss.weight"]
        assert report.stripped_prefix == len(sd) + 1
    with torch.no_grad():
        assert torch.equal(other(x), small(x))


def test_build_with_checkpoint_assigns_on_meta(tmp_path, small, x):
    path = save_checkpoint(small, tmp_path / "small.pth", wrapper_key="state_dict", epoch=1)
    model = segmenters.build("deeplabv3plus_small", checkpoint=path)
    assert not model.training
    assert not any(t.is_meta for t in list(model.parameters()) + list(model.buffers()))
    assert all(p.requires_grad for p in model.parameters())
    assert model.checkpoint_sha256 == sha(path)
    with torch.no_grad():
        assert torch.equal(model(x), small(x))
    # a file written by save_checkpoint is weights-only loadable and atomic (no temp files left)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.pth"]


def test_wrong_checkpoint_reports_keys_by_file(tmp_path):
    torch.manual_seed(0)
    five = segmenters.build("deeplabv3plus_small", num_classes=5)
    sd = five.state_dict()
    sd.pop("backbone.stem.0.weight")
    sd["extra.head.weight"] = torch.zeros(3)
    path = tmp_path / "wrong.pth"
    torch.save({"state_dict": sd}, path)
    model = segmenters.build("deeplabv3plus_small")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(model, path)
    msg = str(err.value)
    assert str(path) in msg and "VainFDeepLabV3Plus" in msg
    assert "1 missing, 1 unexpected, 2 shape-mismatched keys" in msg
    assert "backbone.stem.0.weight" in msg and "extra.head.weight" in msg
    assert "classifier.classifier.3.weight: [5, 64, 1, 1] vs [19, 64, 1, 1]" in msg
    assert "classifier.classifier.3.bias: [5] vs [19]" in msg


def test_report_truncates_long_lists_with_counts(tmp_path):
    torch.manual_seed(0)
    model = segmenters.build("deeplabv3plus_small")
    sd = OrderedDict((f"nonsense.{i}", torch.zeros(1)) for i in range(30))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(model, sd)
    msg = str(err.value)
    n_model = len(model.state_dict())
    assert f"{n_model} missing, 30 unexpected" in msg
    assert f"missing in checkpoint ({n_model}):" in msg and f"... and {n_model - 20} more" in msg
    assert "unexpected in checkpoint (30):" in msg and "... and 10 more" in msg
    assert "nonsense.19" in msg and "nonsense.20" not in msg


def test_non_strict_allows_missing_but_never_shape_mismatch(small):
    sd = small.state_dict()
    partial = {k: v for k, v in sd.items() if k.startswith("backbone.")}
    torch.manual_seed(5)
    model = segmenters.build("deeplabv3plus_small")
    report = load_checkpoint(model, partial, strict=False)
    assert report.missing and not report.unexpected
    assert torch.equal(model.backbone.stem[0].weight, small.backbone.stem[0].weight)
    bad = dict(partial)
    bad["backbone.stem.0.weight"] = torch.zeros(1, 1, 1, 1)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_checkpoint(model, bad, strict=False)


class Exploit:
    """Pickles to ``os.system(<command>)``."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class CustomThing:
    def __init__(self) -> None:
        self.value = 1


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_exploit_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as fh:  # a legacy (non-zip) pickle stream
        pickle.dump({"state_dict": {"w": torch.zeros(1)}, "payload": Exploit(f"touch {marker}")}, fh)
    path2 = tmp_path / "evil_zip.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": Exploit(f"touch {marker}")}, path2)
    model = segmenters.build("deeplabv3plus_small")
    for p in (path, path2):
        with pytest.raises(CheckpointError, match="refused") as err:
            load_checkpoint(model, p)
        assert str(p) in str(err.value)
    assert not marker.exists()


def test_custom_class_checkpoint_is_refused(tmp_path):
    path = tmp_path / "custom.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "meta": CustomThing()}, path)
    with pytest.raises(CheckpointError, match="weights-only"):
        read_checkpoint(path)


def test_unreadable_and_missing_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match=str(junk)):
        read_checkpoint(junk)
    bad_st = tmp_path / "junk.safetensors"
    bad_st.write_bytes(b"\x00\x01")
    with pytest.raises(CheckpointError, match="safetensors"):
        read_checkpoint(bad_st)


def test_extract_rejects_non_tensor_state(tmp_path):
    with pytest.raises(CheckpointError, match="not a state dict of tensors"):
        extract_state_dict({"state_dict": {"a": 1}}, "x.pth")
    with pytest.raises(CheckpointError, match="expected a state dict"):
        extract_state_dict([1, 2], "x.pth")


def test_fp16_checkpoint_is_cast_to_model_dtype(small, x):
    sd = {k: (v.half() if v.is_floating_point() else v) for k, v in small.state_dict().items()}
    model = segmenters.build("deeplabv3plus_small", checkpoint=sd)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    with torch.no_grad():
        torch.testing.assert_close(model(x), small(x), rtol=2e-2, atol=2e-2)


# --- recipe v2 ------------------------------------------------------------------------------

README_CHECKS = {  # compat/README.md "Check values for recipe v2" (MobileNet column)
    "conv": (60, 5189952, 111.6491634, 17696.13291),
    "bn_weight": (59, 17616, 17602.21689, None),
    "bn_bias": (59, 17616, 19.46714757, None),
    "bn_running_mean": (59, 17616, 41.96336847, None),
    "bn_running_var": (59, 17616, 15881.15771, None),
    "other": (1, 19, 0.1087634209, None),
    "all": (297, 5260435, 33656.56305, None),
}


def test_recipe_v2_check_values_mobilenet():
    m = load_manifest(COMPAT / "vainf_deeplabv3plus_mobilenet_os16.json")
    sd = recipe_state_dict(m)
    assert list(sd) == [k for k, _, _ in m["keys"]]
    first = sd["backbone.low_level_features.0.0.weight"].flatten()[:3].tolist()
    np.testing.assert_allclose(first, [0.024196792, -0.025423592, 0.1232494], rtol=1e-7)
    np.testing.assert_allclose(sd["classifier.classifier.3.bias"][-2:].tolist(), [0.092712454, 0.12135128], rtol=1e-7)
    groups = recipe_check_values(sd)
    for g, (entries, elements, total, sumsq) in README_CHECKS.items():
        assert groups[g]["entries"] == entries and groups[g]["elements"] == elements
        assert groups[g]["sum"] == pytest.approx(total, rel=1e-7, abs=1e-6)
        if sumsq is not None:
            assert groups[g]["sumsq"] == pytest.approx(sumsq, rel=1e-8)
    assert groups["all"]["elements"] == m["counts"]["float_elements_drawn_by_recipe"]
    nbt = [v for k, v in sd.items() if k.endswith("num_batches_tracked")]
    assert nbt and all(v.dtype == torch.int64 and v.shape == () and v.item() == 0 for v in nbt)


def test_recipe_single_stream_equals_one_big_draw():
    """README: one standard_normal call over all float elements, split in order, is bitwise equal."""
    m = load_manifest(COMPAT / "vainf_deeplabv3plus_mobilenet_os16.json")
    sd = recipe_state_dict(m)
    names = {k for k, _, _ in m["keys"]}
    z = np.random.default_rng(0).standard_normal(m["counts"]["float_elements_drawn_by_recipe"])
    pos = 0
    for k, shape, dt in m["keys"]:
        if dt == "int64":
            continue
        n = int(np.prod(shape)) if shape else 1
        zz = z[pos:pos + n].reshape(shape)
        pos += n
        prefix, _, leaf = k.rpartition(".")
        if len(shape) >= 2:
            ref = zz / np.sqrt(np.prod(shape[1:]))
        elif prefix + ".running_var" in names:
            ref = {"weight": 1 + 0.1 * zz, "bias": 0.1 * zz, "running_mean": 0.1 * zz,
                   "running_var": 0.5 + 0.5 * np.abs(zz)}[leaf]
        else:
            ref = 0.1 * zz
        assert np.array_equal(sd[k].numpy(), ref.astype(np.float32)), k
    assert pos == z.size


def test_recipe_checkpoint_wrapper_and_loading(tmp_path):
    m = load_manifest(COMPAT / "vainf_deeplabv3plus_mobilenet_os16.json")
    ck = recipe_checkpoint(m)
    assert list(ck) == ["model_state"]
    model = segmenters.build("deeplabv3plus_mobilenetv2", checkpoint=ck)
    assert model.checkpoint_sha256 is None  # in memory: no file hash
    assert torch.equal(model.classifier.classifier[3].bias, ck["model_state"]["classifier.classifier.3.bias"])


def test_manifest_errors_name_the_file(tmp_path):
    from oodbench.segmenters.recipe import ManifestError

    p = tmp_path / "m.json"
    p.write_text(json.dumps({"name": "x", "wrapper": {}, "keys": [["a", [1], "float16"]]}))
    with pytest.raises(ManifestError, match=r"m\.json: keys\[0\]"):
        load_manifest(p)
