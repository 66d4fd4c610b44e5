"""Every registered split loads from the synthetic benchmark (``oodbench synth``), with the counts
its ``oodbench_manifest.json`` declares and labels in the 0/1/255 contract.

Uses the session fixture ``synth_root`` of tests/conftest.py; skipped only while the generator
(:func:`oodbench.datasets.synth.generate`) does not exist in this checkout.
"""
from __future__ import annotations

import numpy as np
import pytest

from oodbench.datasets import DATASETS, get_split, read_manifest, require_available


@pytest.mark.parametrize("name", DATASETS.names())
def test_split_loads_from_the_synthetic_benchmark(synth_root, name):
    counts = read_manifest(synth_root)["counts"]
    split = get_split(name, synth_root)
    ids = split.frame_ids()
    assert split.synthetic and len(ids) == split.expected() == counts[name] > 0
    for fid in (ids[0], ids[-1]):
        frame = split.load(fid)
        assert frame.frame_id == fid and frame.image.dtype == np.uint8 and frame.image.ndim == 3
        if not split.labels_public:
            assert frame.label is None
            continue
        assert frame.label.shape == frame.shape
        assert set(np.unique(frame.label).tolist()) <= {0, 1, 255}
        if split.num_classes is not None:
            assert set(np.unique(frame.semantic).tolist()) <= set(range(split.num_classes + 1)) | {255}


def test_dataset_all_finds_every_labelled_split(synth_root):
    found, missing = require_available(synth_root)
    assert missing == {}
    assert found == [n for n in DATASETS.names() if DATASETS.get(n).obj.labels_public]
