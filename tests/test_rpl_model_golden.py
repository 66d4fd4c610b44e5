"""Golden parity of ``rpl`` with the official RPL code (``rev3.pth`` layout with CoroCL, ``res.pth`` without).

The seed-0 recipe-v2 weights of ``rpl_corocl_rev3.json`` / ``rpl_res.json`` are wrapped as the
official engine saves them (``{'model': ..., 'optimizer', 'epoch', 'iteration'}``), loaded through
``oodbench.methods.build("rpl", checkpoint=...)`` (projector auto-detected from the keys), and
``out1``, ``out2`` and the blurred energy ``anomaly_score`` must be within
``1e-4 * max|golden|`` of the official outputs (project copies in ``tests/data/compat``).
"""
from __future__ import annotations

import pytest
import torch

from oodbench import methods, segmenters
from oodbench.segmenters.recipe import recipe_checkpoint


@pytest.mark.parametrize("manifest_name,projector", [("rpl_corocl_rev3", True), ("rpl_res", False)])
def test_rpl_golden_parity(manifest_name, projector, compat):
    manifest = compat.manifest(manifest_name)
    ckpt = recipe_checkpoint(manifest)
    compat.check_recipe(manifest, ckpt["model"])
    ckpt.update(optimizer={"state": {}, "param_groups": []}, epoch=40, iteration=14840)
    method = methods.build("rpl", checkpoint=ckpt)
    assert method.net.projector is projector and method.requires_fit is False
    golden = compat.load(manifest_name)
    x = compat.input()
    with torch.no_grad():
        out1, out2, proj = method.net(x)
    assert proj is None
    compat.assert_parity(out1, golden["out1"], "out1")
    compat.assert_parity(out2, golden["out2"], "out2")
    anomaly = method.score(out2)
    compat.assert_parity(anomaly[0], golden["anomaly_score"], "anomaly_score")
    # predict() = the same score and the untouched closed-set logits
    pa, pl = method.predict(x)
    assert torch.equal(pa, anomaly) and torch.equal(pl, out1)
    # cross-check from the golden README: the closed-set entries of the RPL file, loaded into
    # the plain NVIDIA segmenter, reproduce out1
    closed = {k.replace("branch1.", "module.", 1): v for k, v in ckpt["model"].items()
              if not k.startswith("branch1.residual_block.")}
    seg = segmenters.build("deeplabv3plus_wrn38", checkpoint={"state_dict": closed})
    with torch.no_grad():
        compat.assert_parity(seg(x), golden["out1"], "closed-set logits from the RPL file")
