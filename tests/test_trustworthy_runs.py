"""``run_method`` on a tiny in-memory split: untrained weights are refused or marked; the FPR95 rule
chosen reaches the metric code and the record."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from oodbench.contracts import Frame
from oodbench.datasets.base import Split
from oodbench.methods import Method, UntrainedMethodError, build
from oodbench.runner import RunConfig, StaleRunError, run_method
from oodbench.results import load_results


class TinySplit(Split):
    """Four 32x32 frames with a square anomaly; nothing on disk."""

    name = "tiny-split"
    benchmark = "Tiny"
    protocol = "exact"

    def frame_ids(self) -> list[str]:
        return ["f0", "f1", "f2", "f3"]

    def load(self, frame_id: str) -> Frame:
        rng = np.random.default_rng(int(frame_id[1:]))
        label = np.zeros((32, 32), np.uint8)
        label[8:16, 8:16] = 1
        label[0, :] = 255
        return Frame(frame_id, rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), label)


@pytest.fixture()
def split(tmp_path):
    return TinySplit(tmp_path / "data")


def _cfg(tmp_path, **kw) -> RunConfig:
    return RunConfig(out=tmp_path / "out", results_dir=tmp_path / "results", progress=False, **kw)





class NeedsFit(Method):
    """A method with its own (unfitted) parameters: scores are its bias plus the image's red channel."""

    name = "needs-fit"
    requires_fit = True

    def predict(self, x):
        return x[:, 0] * 0.1 + 1.0, torch.zeros(x.shape[0], 2, *x.shape[2:])


@pytest.fixture()
def needs_fit():
    from oodbench.methods import METHODS

    METHODS.register("needs-fit", NeedsFit)
    yield NeedsFit
    METHODS.unregister("needs-fit")


# -- #12.4 untrained weights --------------------------------------------------------------------------
def test_posthoc_method_without_checkpoint_is_refused_before_anything_is_written(tmp_path, split):
    method = build("energy", segmenter="deeplabv3plus_small")
    with pytest.raises(UntrainedMethodError) as err:
        run_method("energy", [split], _cfg(tmp_path), method=method)
    msg = str(err.value)
    assert "--checkpoint" in msg and "--allow-untrained" in msg and "\n" not in msg
    assert not (tmp_path / "out").exists() and not (tmp_path / "results").exists()


def test_method_that_requires_fit_is_refused(tmp_path, split, needs_fit):
    with pytest.raises(UntrainedMethodError, match="needs-fit.*fit"):
        run_method("needs-fit", [split], _cfg(tmp_path), method=NeedsFit())
    assert not (tmp_path / "out").exists()


def test_rpl_with_a_segmenter_only_checkpoint_is_refused(tmp_path, split, segmenter_ckpt):
    method = build("rpl", segmenter="deeplabv3plus_small", checkpoint=str(segmenter_ckpt))
    with pytest.raises(UntrainedMethodError) as err:
        run_method("rpl", [split], _cfg(tmp_path), method=method)
    msg = str(err.value)
    assert str(segmenter_ckpt) in msg and "segmenter weights only" in msg
    assert "branch1.residual_block." in msg and "\n" not in msg
    assert not (tmp_path / "out").exists() and not (tmp_path / "results").exists()
    rpl_no_file = build("rpl", segmenter="deeplabv3plus_small")
    with pytest.raises(UntrainedMethodError, match="--checkpoint"):
        run_method("rpl", [split], _cfg(tmp_path), method=rpl_no_file)


def test_a_checkpoint_makes_the_run_a_normal_one(tmp_path, split, segmenter_ckpt):
    method = build("energy", segmenter="deeplabv3plus_small", checkpoint=str(segmenter_ckpt))
    (r,) = run_method("energy", [split], _cfg(tmp_path), method=method)
    assert r.untrained is False and r.checkpoint_sha256


def test_allow_untrained_marks_record_and_fingerprint(tmp_path, split):
    method = build("energy", segmenter="deeplabv3plus_small")
    (r,) = run_method("energy", [split], _cfg(tmp_path, allow_untrained=True), method=method)
    assert r.untrained is True and "--checkpoint" in r.notes["untrained"]
    (loaded,) = load_results(tmp_path / "results")
    assert loaded.untrained is True
    manifests = list((tmp_path / "out").rglob("*.json"))
    assert manifests and all(json.loads(p.read_text()).get("untrained") is True for p in manifests
                             if "hparams" in json.loads(p.read_text()))


def test_a_run_manifest_edited_by_hand_is_refused(tmp_path, split):
    # "untrained": true -> false would turn the record of random weights into a normal row
    from oodbench.evaluate import evaluate_split
    from oodbench.store import PredictionError, PredictionStore

    method = build("energy", segmenter="deeplabv3plus_small")
    run_method("energy", [split], _cfg(tmp_path, allow_untrained=True), method=method)
    store = PredictionStore(tmp_path / "out", "energy")
    path = store.anomaly_dir(split.key) / ".oodbench-run.json"
    manifest = json.loads(path.read_text())
    assert manifest["untrained"] is True and len(manifest["manifest_sha256"]) == 64
    assert store.read_run_manifest(split.key) == {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    assert evaluate_split(split, store).num_frames == 4
    path.write_text(json.dumps({**manifest, "untrained": False}, indent=2))
    for read in (lambda: store.read_run_manifest(split.key), lambda: evaluate_split(split, store),
                 lambda: run_method("energy", [split], _cfg(tmp_path, allow_untrained=True), method=method)):
        with pytest.raises(PredictionError, match="changed after oodbench wrote it") as err:
            read()
        assert str(path) in str(err.value) and "--overwrite" in str(err.value)
    # --overwrite recomputes and writes a new, sealed manifest
    (r,) = run_method("energy", [split], _cfg(tmp_path, allow_untrained=True, overwrite=True), method=method)
    assert r.untrained is True and store.read_run_manifest(split.key)["untrained"] is True
    # a manifest of an older oodbench (no digest) is read as it is
    legacy = {k: v for k, v in json.loads(path.read_text()).items() if k != "manifest_sha256"}
    path.write_text(json.dumps(legacy))
    assert store.read_run_manifest(split.key) == legacy


def test_untrained_predictions_are_not_reused_once_the_method_is_fitted(tmp_path, split, needs_fit):
    method = NeedsFit()
    run_method("needs-fit", [split], _cfg(tmp_path, allow_untrained=True), method=method)
    method.requires_fit = False  # what ``fit`` does; same hparams, same (absent) checkpoint
    with pytest.raises(StaleRunError):
        run_method("needs-fit", [split], _cfg(tmp_path), method=method)


# -- #12.5 the FPR95 rule reaches the metric code and the record -------------------------------------
@pytest.mark.parametrize("rule", ["first_tpr_ge", "nearest_recall", "first_tpr_gt"])
def test_fpr_rule_reaches_metrics_and_record(tmp_path, split, segmenter_ckpt, rule):
    method = build("energy", segmenter="deeplabv3plus_small", checkpoint=str(segmenter_ckpt))
    (r,) = run_method("energy", [split], _cfg(tmp_path, fpr_rule=rule), method=method)
    assert r.protocol == "exact" and r.fpr_rule == rule and r.metrics["fpr_rule"] == rule
    suffix = "" if rule == "first_tpr_ge" else f"-{rule}"
    assert (tmp_path / "results" / f"energy__tiny-split__exact{suffix}.json").is_file()


def test_an_official_protocol_refuses_another_fpr_rule(tmp_path, split, segmenter_ckpt):
    method = build("energy", segmenter="deeplabv3plus_small", checkpoint=str(segmenter_ckpt))
    with pytest.raises(ValueError, match="fishyscapes.*first_tpr_ge"):
        run_method("energy", [split], _cfg(tmp_path, protocol="fishyscapes", fpr_rule="nearest_recall"),
                   method=method)
