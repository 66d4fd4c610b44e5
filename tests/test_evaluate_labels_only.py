"""Evaluation reads labels through ``Split.load_labels`` (never decoding an image), asks the split
for its semantic mapping and calibration group, and gives the same numbers whether the component
pass reuses pass 1's arrays or re-reads them."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from oodbench.contracts import ContractError, Frame
from oodbench.datasets import FrameLabels, Split, get_split
from oodbench.evaluate import evaluate_split
from oodbench.store import PredictionStore

SPLITS = {"smiyc-anomaly-val": {}, "smiyc-obstacle-val": {}, "road-anomaly": {},
          "fishyscapes-laf-val": {"layout": "official"}, "streethazards-test": {"check_count": False}}


@pytest.mark.parametrize("name", sorted(SPLITS))
def test_load_labels_is_load_without_the_image(fixture_tree, name):
    root, _ = fixture_tree
    split = get_split(name, root, **SPLITS[name])
    for fid in split.frame_ids()[:3]:
        full, labels = split.load(fid), split.load_labels(fid)
        assert isinstance(labels, FrameLabels) and labels.frame_id == fid and labels.meta == full.meta
        np.testing.assert_array_equal(labels.label, full.label)
        assert (labels.semantic is None) == (full.semantic is None)
        if full.semantic is not None:
            np.testing.assert_array_equal(labels.semantic, full.semantic)
        assert split.calibration_group(labels) == split.calibration_group(full)


def test_declared_mapping_and_groups(fixture_tree):
    root, _ = fixture_tree
    sh = get_split("streethazards-test", root, check_count=False)
    towns = {sh.calibration_group(sh.load_labels(f)) for f in sh.frame_ids()}
    assert towns == {"t5", "t6"} and sh.semantic_mapping[13] == 9   # car -> car
    smiyc = get_split("smiyc-anomaly-val", root)
    assert smiyc.semantic_mapping is None
    assert smiyc.calibration_group(smiyc.load_labels(smiyc.frame_ids()[0])) == "all"


@pytest.mark.parametrize("name", sorted(SPLITS))
def test_evaluation_never_decodes_an_image(fixture_tree, monkeypatch, name):
    root, _ = fixture_tree
    split = get_split(name, root, **SPLITS[name])
    store = PredictionStore(root, "FixtureWeak")
    want = evaluate_split(split, store, progress=False).metrics

    def refuse(path):
        raise AssertionError(f"evaluation decoded the image {path}")

    monkeypatch.setattr("oodbench.datasets._indexed.read_image", refuse)
    monkeypatch.setattr("oodbench.datasets.fishyscapes.read_image", refuse)
    got = evaluate_split(get_split(name, root, **SPLITS[name]), store, progress=False).metrics
    assert got == want


@pytest.mark.parametrize("name", ["smiyc-anomaly-val", "smiyc-obstacle-val"])
def test_component_pass_same_numbers_cached_or_reread(fixture_tree, name):
    root, _ = fixture_tree
    split = get_split(name, root)
    store = PredictionStore(root, "FixtureGood")
    one_frame = store.read_anomaly(split.key, split.frame_ids()[0]).nbytes * 2
    results = [evaluate_split(split, store, progress=False, pass2_cache_bytes=b).metrics
               for b in (0, one_frame, 1 << 40)]
    assert results[0] == results[1] == results[2] and "siou" in results[0]


def test_label_size_is_checked_against_the_image_header(fixture_tree, tmp_path):
    import shutil

    root, _ = fixture_tree
    copy = tmp_path / "data"
    shutil.copytree(root / "dataset_AnomalyTrack", copy / "dataset_AnomalyTrack")
    split = get_split("smiyc-anomaly-val", copy)
    fid = split.frame_ids()[0]
    label = copy / "dataset_AnomalyTrack" / "labels_masks" / f"{fid}_labels_semantic.png"
    with Image.open(label) as im:
        im.crop((0, 0, im.width - 1, im.height)).save(label)
    for load in (split.load, split.load_labels):
        with pytest.raises(ContractError, match="does not match image"):
            load(fid)


def test_plugin_split_without_load_labels_gets_the_default():
    class OnlyLoad(Split):
        name = "only-load"

        def frame_ids(self):
            return ["a"]

        def load(self, frame_id):
            return Frame(frame_id, np.zeros((2, 3, 3), np.uint8), np.ones((2, 3), np.uint8), meta={"k": 1})

    labels = OnlyLoad(".").load_labels("a")
    assert labels.frame_id == "a" and labels.meta == {"k": 1} and labels.label.shape == (2, 3)
    assert OnlyLoad(".").calibration_group(labels) == "all" and OnlyLoad.semantic_mapping is None


def test_semantic_bootstrap_counts_same_cached_or_reread(fixture_tree):
    """With --bootstrap, pass 2 also counts each frame's open-set / closed-set confusion at pass 1's
    thresholds; the numbers, intervals and counts do not depend on what pass 1 kept."""
    from oodbench.intervals import BootstrapSpec
    from oodbench.metrics._resample import resampler

    root, _ = fixture_tree
    split = get_split("streethazards-test", root, check_count=False)
    store = PredictionStore(root, "FixtureGood")
    plain = evaluate_split(split, store, progress=False)
    fid = split.frame_ids()[0]
    one_frame = store.read_anomaly(split.key, fid).nbytes + 3 * split.load_labels(fid).semantic.size
    outs = [evaluate_split(split, store, progress=False, pass2_cache_bytes=b, bootstrap=BootstrapSpec(n=50))
            for b in (0, one_frame, 1 << 40)]
    for ev in outs:
        assert ev.metrics == plain.metrics and ev.ci == outs[0].ci
        assert ev.frame_states["semantic"].frame_ids == split.frame_ids()
        assert "not_covered" not in ev.bootstrap
    assert {"open_miou", "closed_miou"} <= set(outs[0].ci)
    point = resampler(outs[0].frame_states["semantic"]).metrics(np.ones((1, len(split.frame_ids()))))
    for k, v in point.items():
        assert v[0] == pytest.approx(plain.metrics[k], abs=1e-12), k


def test_sharded_semantic_bootstrap_equals_one_process(fixture_tree):
    """Two shards (threads exchanging state dicts at every reduce, like the all-gather of
    ``oodbench.sharding``) give the single-process metrics and intervals, open-set mIoU included."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from oodbench.intervals import BootstrapSpec

    root, _ = fixture_tree
    split = get_split("streethazards-test", root, check_count=False)
    store = PredictionStore(root, "FixtureGood")
    spec = BootstrapSpec(n=50)
    whole = evaluate_split(split, store, progress=False, bootstrap=spec)
    ids = split.frame_ids()
    barrier, slots = threading.Barrier(2), [None, None]

    def reducer(rank):
        def reduce(acc):
            slots[rank] = acc.state_dict()
            barrier.wait()
            states = list(slots)
            barrier.wait()
            return type(acc).merge_states(states)
        return reduce

    shards = [ids[:5], ids[5:]]
    with ThreadPoolExecutor(2) as pool:
        outs = list(pool.map(lambda r: evaluate_split(split, store, frame_ids=shards[r], reduce=reducer(r),
                                                      progress=False, bootstrap=spec), (0, 1)))
    for ev in outs:
        assert ev.metrics == whole.metrics and ev.ci == whole.ci and "open_miou" in ev.ci
