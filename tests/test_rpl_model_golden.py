"""Golden parity of ``rpl`` with the official RPL code (``rev3.pth`` layout with CoroCL, ``res.pth`` without).

The seed-0 recipe-v2 weights of ``rpl_corocl_rev3.json`` / ``rpl_res.json`` are wrapped as the
official engine saves them (``{'model': ..., 'optimizer', 'epoch', 'iteration'}``), loaded through
``oodbench.methods.build("rpl", checkpoint=...)`` (projector auto-detected from the keys), and
``out1``, ``out2`` and the blurred energy ``anomaly_score`` must be within
``1e-4 * max|golden|`` of the official outputs (project copies in ``tests/data/compat``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from oodbench import methods, segmenters
from oodbench.segmenters.recipe import load_manifest, recipe_check_values, recipe_checkpoint

COMPAT = Path(__file__).resolve().parent / "data" / "compat"
INPUT_SUM = -416.74429652075924
TOL = 1e-4
# compat/README.md "Check values for recipe v2": conv sum of squares, BN running_var sum, all-float sum
CHECKS = {
    "rpl_corocl_rev3": (36204.06824, 20535.00581, 43549.02093),
    "rpl_res": (35900.17528, 20549.12262, 43592.42022),
}


def golden_input() -> torch.Tensor:
    x = np.random.default_rng(1).standard_normal((1, 3, 96, 160)).astype(np.float32)
    assert float(x.astype(np.float64).sum()) == pytest.approx(INPUT_SUM, rel=0, abs=1e-9)
    return torch.from_numpy(x)


def load_golden(name: str) -> dict[str, np.ndarray]:
    z = np.load(COMPAT / "golden" / f"golden_{name}.npz")
    assert float(z["input_sum"]) == pytest.approx(INPUT_SUM, abs=1e-9)
    assert int(z["weight_seed"]) == 0 and int(z["input_seed"]) == 1
    return {k: z[k] for k in z.files}


def assert_parity(ours: torch.Tensor, golden: np.ndarray, what: str) -> None:
    ours = ours.detach().float().numpy()
    assert ours.shape == golden.shape, f"{what}: shape {ours.shape} vs golden {golden.shape}"
    rel = float(np.abs(ours - golden).max() / np.abs(golden).max())
    assert rel <= TOL, f"{what}: max|ours - golden| = {rel:.3g} x max|golden| (tolerance {TOL})"


def check_recipe(manifest: dict, state_dict) -> None:
    conv_sumsq, bn_var, total = CHECKS[manifest["name"]]
    groups = recipe_check_values(state_dict)
    assert groups["conv"]["sumsq"] == pytest.approx(conv_sumsq, rel=1e-8)
    assert groups["bn_running_var"]["sum"] == pytest.approx(bn_var, rel=1e-7)
    assert groups["all"]["sum"] == pytest.approx(total, rel=1e-7)


@pytest.mark.parametrize("manifest_name,projector", [("rpl_corocl_rev3", True), ("rpl_res", False)])
def test_rpl_golden_parity(manifest_name, projector):
    manifest = load_manifest(COMPAT / f"{manifest_name}.json")
    ckpt = recipe_checkpoint(manifest)
    check_recipe(manifest, ckpt["model"])
    ckpt.update(optimizer={"state": {}, "param_groups": []}, epoch=40, iteration=14840)
    method = methods.build("rpl", checkpoint=ckpt)
    assert method.net.projector is projector and method.requires_fit is False
    golden = load_golden(manifest_name)
    x = golden_input()
    with torch.no_grad():
        out1, out2, proj = method.net(x)
    assert proj is None
    assert_parity(out1, golden["out1"], "out1")
    assert_parity(out2, golden["out2"], "out2")
    anomaly = method.score(out2)
    assert_parity(anomaly[0], golden["anomaly_score"], "anomaly_score")
    # predict() = the same score and the untouched closed-set logits
    pa, pl = method.predict(x)
    assert torch.equal(pa, anomaly) and torch.equal(pl, out1)
    # cross-check from the golden README: the closed-set entries of the RPL file, loaded into
    # the plain NVIDIA segmenter, reproduce out1
    closed = {k.replace("branch1.", "module.", 1): v for k, v in ckpt["model"].items()
              if not k.startswith("branch1.residual_block.")}
    seg = segmenters.build("deeplabv3plus_wrn38", checkpoint={"state_dict": closed})
    with torch.no_grad():
        assert_parity(seg(x), golden["out1"], "closed-set logits from the RPL file")
