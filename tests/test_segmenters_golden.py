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

import numpy as np
import pytest
import torch

from oodbench import segmenters
from oodbench.segmenters.recipe import recipe_checkpoint

CASES = [
    ("nvidia_wrn38_deeplabv3plus_cityscapes_best", "deeplabv3plus_wrn38"),
    ("vainf_deeplabv3plus_mobilenet_os16", "deeplabv3plus_mobilenetv2"),
    ("vainf_deeplabv3plus_resnet101_os16", "deeplabv3plus_resnet101"),
]


@pytest.mark.parametrize("manifest_name,segmenter", CASES)
def test_golden_parity(manifest_name, segmenter, compat):
    manifest = compat.manifest(manifest_name)
    ckpt = recipe_checkpoint(manifest)
    wrap = manifest["wrapper"]["state_dict_key"]
    assert list(ckpt) == [wrap]
    compat.check_recipe(manifest, ckpt[wrap])
    model = segmenters.build(segmenter, checkpoint=ckpt)  # through the loader, strictly
    assert not model.training
    with torch.no_grad():
        logits = model(compat.input())
    compat.assert_parity(logits, compat.load(manifest_name)["logits"], f"{segmenter} logits")


def test_wrong_manifest_fails_with_key_report(compat):
    """The ResNet101 file into the MobileNet architecture: a readable strict-load failure."""
    from oodbench.segmenters import CheckpointError

    manifest = compat.manifest("vainf_deeplabv3plus_mobilenet_os16")
    sd = recipe_checkpoint(manifest)["model_state"]
    with pytest.raises(CheckpointError) as err:
        segmenters.build("deeplabv3plus_resnet101", checkpoint={"model_state": sd})
    msg = str(err.value)
    assert "missing in checkpoint" in msg and "backbone.layer1.0.conv1.weight" in msg
    assert "unexpected in checkpoint" in msg and "backbone.low_level_features.0.0.weight" in msg
    assert "classifier.project.0.weight: [48, 24, 1, 1] vs [48, 256, 1, 1]" in msg


def test_project_copies_match_shared(compat):
    """The copies in tests/data/compat equal ../shared/compat (arrays compared; RPL files drop one array)."""
    COMPAT, SHARED_COMPAT = compat.dir, compat.shared
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


def test_manifest_copies_are_complete(compat):
    COMPAT = compat.dir
    names = sorted(p.stem for p in COMPAT.glob("*.json"))
    assert names == sorted(compat.recipe_checks)
    for n in names:
        m = json.loads((COMPAT / f"{n}.json").read_text())
        assert len(m["keys"]) == m["counts"]["entries"]
        assert (COMPAT / "golden" / f"golden_{n}.npz").is_file()
