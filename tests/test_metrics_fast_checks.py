"""The fast input checks (float16 finiteness by bit pattern, 0/1/255 labels by one uint8 pass)
accept and reject exactly what the counting checks they replace on the hot path do."""
from __future__ import annotations

import numpy as np
import pytest

from oodbench.contracts import ContractError, check_labels
from oodbench.metrics._base import MetricInputError
from oodbench.metrics._inputs import check_label_values, check_scores, label_counts


def test_float16_finiteness_by_bits_matches_isfinite():
    every = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    for value in every[::13].tolist() + [65504.0, -65504.0, float("inf"), float("-inf"), float("nan"), -0.0]:
        arr = np.full((3, 5), 0.25, np.float16)
        arr[1, 2] = value
        if np.isfinite(np.float16(value)):
            assert check_scores(arr, "f") is arr
        else:
            with pytest.raises(MetricInputError, match="f: scores contain"):
                check_scores(arr, "f")


@pytest.mark.parametrize("value", range(256))
def test_label_values_check_matches_label_counts(value):
    lab = np.zeros((4, 4), np.uint8)
    lab[2, 3] = value
    if value in (0, 1, 255):
        check_label_values(lab, "f")
        label_counts(lab, "f")
    else:
        with pytest.raises(MetricInputError) as fast:
            check_label_values(lab, "f")
        with pytest.raises(MetricInputError) as counted:
            label_counts(lab, "f")
        assert str(fast.value) == str(counted.value)


@pytest.mark.parametrize("dtype", [np.uint8, np.int32])
def test_contract_label_check_accepts_exactly_0_1_255(dtype):
    for value in range(256):
        lab = np.zeros((3, 4), dtype)
        lab[1, 1] = value
        if value in (0, 1, 255):
            assert check_labels(lab, "f").dtype == np.uint8
        else:
            with pytest.raises(ContractError, match=rf"f: unexpected label values \[{value}\]"):
                check_labels(lab, "f")


def test_store_finiteness_check_matches_isfinite():
    from oodbench.store import _all_finite

    every = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    for value in every[::7]:
        arr = np.full((2, 3), 0.5, np.float16)
        arr[1, 1] = value
        assert _all_finite(arr) == bool(np.isfinite(arr).all()) == _all_finite(arr.astype(np.float32))
    assert _all_finite(np.zeros((0, 4), np.float16))
