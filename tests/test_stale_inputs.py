"""Stored predictions are tied to the image files they were predicted from (``oodbench_input`` in each
score file): when the data under the root changes after a run, ``run`` recomputes exactly the changed
frames and ``evaluate`` refuses them, on the real adapters of a synthetic benchmark."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from oodbench.datasets import get_split, input_digest
from oodbench.evaluate import evaluate_split
from oodbench.methods import Method
from oodbench.runner import RunConfig, run_method
from oodbench.store import PredictionStore, StalePredictionsError


class RedChannel(Method):
    """Scores = the red channel: a prediction that depends on nothing but the image."""

    name = "red-channel"

    def predict(self, x):
        return x[:, 0], torch.zeros(x.shape[0], 2, *x.shape[2:])


@pytest.fixture()
def red_channel():
    from oodbench.methods import METHODS

    METHODS.register("red-channel", RedChannel)
    yield RedChannel
    METHODS.unregister("red-channel")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    from oodbench.datasets.synth import generate

    return generate(tmp_path_factory.mktemp("stale") / "data", seed=0, size=(64, 128), n_train=2, n_val=4,
                    n_coco=2, n_per_split=4)


def _cfg(tmp_path) -> RunConfig:
    return RunConfig(out=tmp_path / "out", results_dir=tmp_path / "results", progress=False)


def _replace_image(path) -> None:
    """Other pixels in the same file, same size: what a new dataset version or another seed gives."""
    with Image.open(path) as im:
        size, fmt = im.size, im.format
    rng = np.random.default_rng(123)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path, format=fmt)


def test_changed_images_are_recomputed_by_run_and_refused_by_evaluate(tmp_path, root, red_channel):
    data = tmp_path / "data"
    shutil.copytree(root, data)
    split = get_split("road-anomaly", data, check_count=False)
    ids = split.frame_ids()
    (first,) = run_method("red-channel", [split], _cfg(tmp_path), method=RedChannel())
    store = PredictionStore(tmp_path / "out", "red-channel")
    assert all(store.read_input_digest(split.key, f) == input_digest(split, f) for f in ids)

    changed = ids[1]
    _replace_image(split.input_files(changed)[0])
    split = get_split("road-anomaly", data, check_count=False)
    with pytest.raises(StalePredictionsError) as err:
        evaluate_split(split, store)
    msg = str(err.value)
    assert f"1 of {len(ids)} frames" in msg and changed in msg and "rerun `oodbench run`" in msg
    assert all(f not in msg for f in ids if f != changed)

    (second,) = run_method("red-channel", [split], _cfg(tmp_path), method=RedChannel())
    run = second.notes["run"]
    assert (run["replaced_changed_input"], run["predicted"], run["skipped"]) == (1, 1, len(ids) - 1)
    assert second.metrics != first.metrics  # the new image's scores, evaluated
    assert evaluate_split(split, store).metrics == second.metrics


def test_a_copied_data_root_matches_its_predictions(tmp_path, root, red_channel):
    split = get_split("road-anomaly", root, check_count=False)
    (rec,) = run_method("red-channel", [split], _cfg(tmp_path), method=RedChannel())
    copy = tmp_path / "elsewhere"
    shutil.copytree(root, copy)
    moved = get_split("road-anomaly", copy, check_count=False)
    assert evaluate_split(moved, PredictionStore(tmp_path / "out", "red-channel")).metrics == rec.metrics
    (again,) = run_method("red-channel", [moved], _cfg(tmp_path), method=RedChannel())
    assert again.notes["run"]["predicted"] == 0 and again.notes["run"]["replaced_changed_input"] == 0


def test_predictions_without_an_input_record_are_still_evaluated(tmp_path, root):
    # written by another tool (or an older oodbench): nothing to compare, nothing refused
    split = get_split("road-anomaly", root, check_count=False)
    store = PredictionStore(tmp_path / "out", "other-tool")
    for fid in split.frame_ids():
        labels = split.load_labels(fid).label
        store.write_anomaly(split.key, fid, (labels == 1).astype(np.float32))
    assert evaluate_split(split, store).metrics["auroc"] == 1.0


def test_the_static_overlay_is_part_of_the_input(root):
    split = get_split("fishyscapes-static-val", root, check_count=False)
    fid = split.frame_ids()[0]
    files = split.input_files(fid)
    # official layout: the Cityscapes image plus the overlay added to it
    assert len(files) == 2 and files[0].name.endswith("_leftImg8bit.png") and files[1].suffix == ".npz"
    lone = get_split("road-anomaly", root, check_count=False)
    assert lone.input_files(lone.frame_ids()[0])[0].suffix == ".jpg"
    assert input_digest(split, fid) != input_digest(split, split.frame_ids()[1])
