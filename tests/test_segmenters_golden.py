"""Golden parity with the official model classes (NVIDIA sdcnet WRN38, VainF MobileNetV2/ResNet101).

For each manifest: build the seed-0 recipe-v2 weights wrapped like the official file
(``{'state_dict'}`` + ``module.`` + criterion key for NVIDIA, ``{'model_state'}`` for VainF), load
them through ``oodbench.segmenters.build(name, checkpoint=...)`` (the real loader: unwrap, strip,
drop, strict compare, assign), run the golden input and require
``max|ours - golden| <= 1e-4 * max|golden|`` (``compat/golden/README.md``). The data are the
project copies in ``tests/data/compat`` (see its README), so these run without ``../shared``.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from oodbench import segmenters
from oodbench.segmenters.recipe import load_manifest, recipe_check_values, recipe_checkpoint

COMPAT = Path(__file__).resolve().parent / "data" / "compat"
SHARED_COMPAT = Path(__file__).resolve().parents[1].parent / "shared" / "compat"
INPUT_SUM = -416.74429652075924
TOL = 1e-4

# compat/README.md "Check values for recipe v2": conv sum of squares, BN running_var sum, all-float sum
CHECKS = {
    "nvidia_wrn38_deeplabv3plus_cityscapes_best": (34061.36924, 19416.339, 41203.14207),
    "vainf_deeplabv3plus_mobilenet_os16": (17696.13291, 15881.15771, 33656.56305),
    "vainf_deeplabv3plus_resnet101_os16": (54507.54438, 48945.86897, 103706.1077),
    "rpl_corocl_rev3": (36204.06824, 20535.00581, 43549.02093),
    "rpl_res": (35900.17528, 20549.12262, 43592.42022),
}

CASES = [
    ("nvidia_wrn38_deeplabv3plus_cityscapes_best", "deeplabv3plus_wrn38"),
    ("vainf_deeplabv3plus_mobilenet_os16", "deeplabv3plus_mobilenetv2"),
    ("vainf_deeplabv3plus_resnet101_os16", "deeplabv3plus_resnet101"),
]


def golden_input() -> torch.Tensor:
    x = np.random.default_rng(1).standard_normal((1, 3, 96, 160)).astype(np.float32)
    assert float(x.astype(np.float64).sum()) == pytest.approx(INPUT_SUM, rel=0, abs=1e-9)
    return torch.from_numpy(x)


def load_golden(name: str) -> dict[str, np.ndarray]:
    z = np.load(COMPAT / "golden" / f"golden_{name}.npz")
    assert float(z["input_sum"]) == pytest.approx(INPUT_SUM, abs=1e-9)
    assert list(z["input_shape"]) == [1, 3, 96, 160]
    assert int(z["weight_seed"]) == 0 and int(z["input_seed"]) == 1
    return {k: z[k] for k in z.files}


def assert_parity(ours: torch.Tensor, golden: np.ndarray, what: str) -> float:
    ours = ours.detach().float().numpy()
    assert ours.shape == golden.shape, f"{what}: shape {ours.shape} vs golden {golden.shape}"
    rel = float(np.abs(ours - golden).max() / np.abs(golden).max())
    assert rel <= TOL, f"{what}: max|ours - golden| = {rel:.3g} x max|golden| (tolerance {TOL})"
    return rel


def check_recipe(manifest: dict, state_dict) -> None:
    conv_sumsq, bn_var, total = CHECKS[manifest["name"]]
    groups = recipe_check_values(state_dict)
    assert groups["conv"]["sumsq"] == pytest.approx(conv_sumsq, rel=1e-8)
    assert groups["bn_running_var"]["sum"] == pytest.approx(bn_var, rel=1e-7)
    assert groups["all"]["sum"] == pytest.approx(total, rel=1e-7)
    assert groups["all"]["elements"] == manifest["counts"]["float_elements_drawn_by_recipe"]


@pytest.mark.parametrize("manifest_name,segmenter", CASES)
def test_golden_parity(manifest_name, segmenter):
    manifest = load_manifest(COMPAT / f"{manifest_name}.json")
    ckpt = recipe_checkpoint(manifest)
    wrap = manifest["wrapper"]["state_dict_key"]
    assert list(ckpt) == [wrap]
    check_recipe(manifest, ckpt[wrap])
    model = segmenters.build(segmenter, checkpoint=ckpt)  # through the loader, strictly
    assert not model.training
    with torch.no_grad():
        logits = model(golden_input())
    assert_parity(logits, load_golden(manifest_name)["logits"], f"{segmenter} logits")


def test_wrong_manifest_fails_with_key_report():
    """The ResNet101 file into the MobileNet architecture: a readable strict-load failure."""
    from oodbench.segmenters import CheckpointError

    manifest = load_manifest(COMPAT / "vainf_deeplabv3plus_mobilenet_os16.json")
    sd = recipe_checkpoint(manifest)["model_state"]
    with pytest.raises(CheckpointError) as err:
        segmenters.build("deeplabv3plus_resnet101", checkpoint={"model_state": sd})
    msg = str(err.value)
    assert "missing in checkpoint" in msg and "backbone.layer1.0.conv1.weight" in msg
    assert "unexpected in checkpoint" in msg and "backbone.low_level_features.0.0.weight" in msg
    assert "classifier.project.0.weight: [48, 24, 1, 1] vs [48, 256, 1, 1]" in msg


def test_project_copies_match_shared():
    """The copies in tests/data/compat equal ../shared/compat (arrays compared; RPL files drop one array)."""
    if not SHARED_COMPAT.is_dir():
        pytest.skip("../shared/compat is absent; the golden tests above already ran on the project copies")
    for src in sorted(SHARED_COMPAT.glob("*.json")):
        assert (COMPAT / src.name).read_bytes() == src.read_bytes(), src.name
    for src in sorted((SHARED_COMPAT / "golden").glob("*.npz")):
        a, b = np.load(src), np.load(COMPAT / "golden" / src.name)
        assert set(b.files) == set(a.files) - {"energy_unblurred"}, src.name
        for k in b.files:
            assert np.array_equal(a[k], b[k]), f"{src.name}:{k}"
    notes = (COMPAT / "README.md").read_text()
    for src in sorted(SHARED_COMPAT.glob("*.json")) + sorted((SHARED_COMPAT / "golden").glob("*.npz")):
        assert hashlib.sha256(src.read_bytes()).hexdigest() in notes, f"provenance note lacks {src.name}"


def test_manifest_copies_are_complete():
    names = sorted(p.stem for p in COMPAT.glob("*.json"))
    assert names == sorted(CHECKS)
    for n in names:
        m = json.loads((COMPAT / f"{n}.json").read_text())
        assert len(m["keys"]) == m["counts"]["entries"]
        assert (COMPAT / "golden" / f"golden_{n}.npz").is_file()
