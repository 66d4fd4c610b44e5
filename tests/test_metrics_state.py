"""Declared accumulator state (oodbench.metrics._state): one generic reset / serialise / merge."""
from __future__ import annotations

import numpy as np
import pytest

from oodbench.metrics import (
    ConfusionMatrix, ExactPixelAccumulator, FishyscapesPixelAccumulator, HendrycksPerImageAccumulator,
    OpenSetMIoU, SmiycComponentAccumulator, SmiycPixelAccumulator,
)
from oodbench.metrics._state import StateSet


class _Leaf(StateSet):
    def __init__(self) -> None:
        self.add_state("count", 0, merge="sum")
        self.add_state("values", [], merge="cat", dtype=np.float32)


class _Toy(StateSet):
    def __init__(self) -> None:
        self.add_state("hist", np.zeros(4, np.int64), merge="sum")
        self.add_state("total", 0.0, merge="sum")
        self.add_state("ragged", [], merge="cat", dtype=np.float64)
        self.add_state("rows", [], merge="cat", dtype=np.int64, item_shape=(2,))
        self.add_state("names", [], merge="cat", dtype=str, item_shape=())
        self.add_state("leaf", _Leaf, merge="nested")
        self.add_state("groups", _Leaf, merge="keyed")


def _fill(t: _Toy, seed: int, keys: tuple[str, ...]) -> _Toy:
    rng = np.random.default_rng(seed)
    for i in range(3):
        t.hist += rng.integers(0, 5, 4)
        t.total += 0.5
        t.ragged.append(rng.random(rng.integers(0, 4)))
        t.rows.append(rng.integers(0, 9, 2))
        t.names.append(f"s{seed}-{i}")
        t.leaf.count += 1
        t.leaf.values.append(rng.random(2).astype(np.float32))
    for k in keys:
        g = t.groups.setdefault(k, _Leaf())
        g.count += seed
        g.values.append(np.full(seed, seed, np.float32))
    return t


def _assert_items_equal(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for k in a:
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)


def test_every_rule_round_trips_through_npz(tmp_path):
    t = _fill(_Toy(), 1, ("b", "a"))
    items = t.state_items()
    assert list(items) == ["hist", "total", "ragged", "ragged.lengths", "rows", "names",
                           "leaf.count", "leaf.values", "leaf.values.lengths",
                           "groups", "groups.a.count", "groups.a.values", "groups.a.values.lengths",
                           "groups.b.count", "groups.b.values", "groups.b.values.lengths"]
    np.savez(tmp_path / "s.npz", **items)
    back = _Toy()
    back.load_state_items(dict(np.load(tmp_path / "s.npz")))
    _assert_items_equal(back.state_items(), items)
    assert back.names == t.names and isinstance(back.names[0], str)
    assert [a.tolist() for a in back.ragged] == [a.tolist() for a in t.ragged]


def test_merge_follows_the_declared_rules():
    a, b = _fill(_Toy(), 1, ("x",)), _fill(_Toy(), 2, ("x", "y"))
    b_before = b.state_items()
    hist, rows = a.hist + b.hist, [*a.rows, *b.rows]
    a.merge_from(b)
    np.testing.assert_array_equal(a.hist, hist)                    # sum
    assert a.total == 3.0                                           # sum of scalars
    np.testing.assert_array_equal(np.array(a.rows), np.array(rows))  # cat, in order
    assert a.names == ["s1-0", "s1-1", "s1-2", "s2-0", "s2-1", "s2-2"]
    assert a.leaf.count == 6                                       # nested
    assert sorted(a.groups) == ["x", "y"] and a.groups["x"].count == 3 and a.groups["y"].count == 2
    _assert_items_equal(b.state_items(), b_before)                  # other is unchanged
    a.groups["y"].values[0][0] = -1.0                               # and shares no arrays
    assert b.groups["y"].values[0][0] == 2.0


def test_reset_restores_defaults_without_sharing_them():
    t = _fill(_Toy(), 3, ("k",))
    t.reset_state()
    assert t.hist.tolist() == [0, 0, 0, 0] and t.total == 0.0 and t.ragged == [] and t.groups == {}
    t.hist += 1
    assert _Toy().hist.tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("kwargs, error", [
    (dict(default=[], merge="sum"), "needs a number or an array"),
    (dict(default=[], merge="cat"), "default=[] and a dtype"),
    (dict(default=0, merge="nested"), "needs a factory"),
    (dict(default=0, merge="max"), "merge must be one of"),
])
def test_bad_declarations_are_refused(kwargs, error):
    with pytest.raises((TypeError, ValueError), match=error.replace("[", r"\[").replace("]", r"\]")):
        StateSet().add_state("x", **kwargs)


def test_cat_lengths_are_checked_on_load():
    t = _fill(_Toy(), 1, ())
    items = t.state_items()
    items["ragged.lengths"] = items["ragged.lengths"] + 1
    with pytest.raises(ValueError, match="lengths sum to"):
        _Toy().load_state_items(items)


def _frames(seed: int, n: int, dtype=np.float32):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        lab = (rng.random((24, 32)) < 0.2).astype(np.uint8)
        lab[:2] = 255
        lab[5:9, 5:12] = 1
        s = (rng.random((24, 32)) + lab).astype(dtype)
        out.append((s, lab))
    return out


def _pixel_accumulators():
    return [
        (lambda: ExactPixelAccumulator(), np.float32),
        (lambda: ExactPixelAccumulator(), np.float16),
        (lambda: FishyscapesPixelAccumulator(), np.float32),
        (lambda: SmiycPixelAccumulator(), np.float16),
        (lambda: SmiycComponentAccumulator("ObstacleTrack", threshold=0.9), np.float32),
    ]


@pytest.mark.parametrize("make, dtype", _pixel_accumulators())
def test_accumulators_shard_save_load_merge_equals_whole(tmp_path, make, dtype):
    """Every accumulator: three shards saved with np.savez, loaded, merged in rank order == one pass."""
    frames = _frames(7, 6, dtype)
    whole = make()
    for i, (s, lab) in enumerate(frames):
        whole.update(s, lab, frame_id=i)
    states = []
    for r, part in enumerate((frames[:1], frames[1:4], frames[4:])):
        acc = make()
        for s, lab in part:
            acc.update(s, lab)
        np.savez(tmp_path / f"{r}.npz", **acc.state_dict())
        states.append(dict(np.load(tmp_path / f"{r}.npz")))
    merged = type(whole).merge_states(states)
    assert merged.compute() == whole.compute()
    assert merged._num_updates == 6
    merged.reset()
    assert merged._num_updates == 0 and all(
        np.asarray(v).size == 0 or not np.asarray(v).any() for v in merged.state_items().values()
        if not isinstance(v, str))


def test_per_image_open_set_and_confusion_states_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    per_image, open_set, conf = HendrycksPerImageAccumulator(), OpenSetMIoU(num_known=3), ConfusionMatrix(3)
    for i in range(4):
        gt = rng.integers(0, 4, (16, 16))
        pred = rng.integers(0, 3, (16, 16))
        s = (rng.random((16, 16)) + (gt == 3)).astype(np.float32)
        per_image.update(s, (gt == 3).astype(np.uint8), frame_id=f"f{i}")
        open_set.update(s, pred, gt, group="t5" if i % 2 else "t6", frame_id=f"f{i}")
        conf.update(pred, np.where(gt == 3, 255, gt))
    for acc in (per_image, open_set, conf):
        np.savez(tmp_path / "s.npz", **acc.state_dict())
        back = type(acc).from_state(dict(np.load(tmp_path / "s.npz")))
        assert back.compute() == acc.compute()
    assert per_image.per_image()["f0"] == HendrycksPerImageAccumulator.from_state(
        per_image.state_dict()).per_image()["f0"]
