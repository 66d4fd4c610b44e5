"""Declared, mergeable metric state (the model is torchmetrics' ``add_state(name, default, dist_reduce_fx)``).

An object that accumulates over frames declares each piece of its state once, with the rule that
merges two copies of it::

    self.add_state("matrix", np.zeros((k, k), np.int64), merge="sum")   # added element-wise
    self.add_state("thresholds", [], merge="cat", dtype=np.float64)     # one 1-D array per frame
    self.add_state("rows", [], merge="cat", dtype=np.float64, item_shape=(3,))  # one row per frame
    self.add_state("calib", ScoreStore, merge="nested")                 # a StateSet of its own
    self.add_state("groups", _Group, merge="keyed")                     # str -> StateSet

and :class:`StateSet` does the rest in one place: ``reset_state`` (back to the defaults),
``state_items`` (a flat dict of plain numpy arrays / Python scalars, ``np.savez``-able),
``load_state_items`` (its inverse) and ``merge_from`` (merge another object's state into this one).

Merge rules:

* ``sum``: numbers or arrays of a fixed shape, added. Order-free.
* ``cat``: a list with one item per update (per frame), concatenated **in list order** when merged;
  the SMIYC protocols depend on that order (``merge_states`` merges shards in rank order, and the
  shards are contiguous, so the merged list is the single-process list). Items are either rows of a
  fixed ``item_shape`` (``()`` for scalars and strings), stored as one stacked array, or ragged 1-D
  arrays (``item_shape=None``), stored concatenated plus ``<name>.lengths``.
* ``nested``: another :class:`StateSet` (built by the zero-argument factory given as default); its
  entries are stored under ``<name>.`` and merged by its own rules.
* ``keyed``: a ``dict`` from string keys to :class:`StateSet` objects built by the factory; merged key
  by key (a key missing on one side is added); stored as ``<name>`` (the sorted keys) plus
  ``<name>.<key>.<entry>``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

__all__ = ["StateSet", "MERGE_RULES"]

MERGE_RULES = ("sum", "cat", "nested", "keyed")


@dataclass(frozen=True)
class _Spec:
    merge: str
    default: Any
    dtype: Any = None
    item_shape: tuple[int, ...] | None = None

    def fresh(self) -> Any:
        if self.merge == "sum":
            return copy.deepcopy(self.default)
        if self.merge == "cat":
            return []
        if self.merge == "nested":
            return self.default()
        return {}


class StateSet:
    """Mixin: state declared with :meth:`add_state`, generic reset / serialise / merge."""

    _state_specs: dict[str, _Spec]

    def add_state(self, name: str, default: Any, merge: str, *, dtype: Any = None,
                  item_shape: tuple[int, ...] | None = None) -> None:
        """Declare the state entry ``name`` and set it to its default.

        Args:
            default: ``sum``: the zero value (int, float or array); ``cat``: ``[]``;
                ``nested`` / ``keyed``: a zero-argument factory of :class:`StateSet` objects.
            merge: one of :data:`MERGE_RULES`.
            dtype: ``cat`` only: the item dtype (``str`` for strings).
            item_shape: ``cat`` only: shape of every item (``()`` scalars), or ``None`` for ragged
                1-D items.
        """
        if merge not in MERGE_RULES:
            raise ValueError(f"state {name!r}: merge must be one of {MERGE_RULES}, got {merge!r}")
        if merge == "sum" and not isinstance(default, (int, float, np.ndarray)):
            raise TypeError(f"state {name!r}: a 'sum' state needs a number or an array default")
        if merge == "cat" and (default != [] or dtype is None):
            raise TypeError(f"state {name!r}: a 'cat' state needs default=[] and a dtype")
        if merge in ("nested", "keyed") and not callable(default):
            raise TypeError(f"state {name!r}: a {merge!r} state needs a factory as default")
        if "_state_specs" not in self.__dict__:
            self._state_specs = {}
        spec = _Spec(merge, default, dtype, None if item_shape is None else tuple(item_shape))
        self._state_specs[name] = spec
        setattr(self, name, spec.fresh())

    # -- reset ---------------------------------------------------------------------------------
    def reset_state(self) -> None:
        """Every declared entry back to its default."""
        for name, spec in self._specs().items():
            setattr(self, name, spec.fresh())

    def _specs(self) -> dict[str, _Spec]:
        return self.__dict__.get("_state_specs", {})

    # -- merge ---------------------------------------------------------------------------------
    def merge_from(self, other: "StateSet") -> None:
        """Merge ``other``'s state into ``self`` by the declared rules (``other`` is unchanged)."""
        for name, spec in self._specs().items():
            mine, theirs = getattr(self, name), getattr(other, name)
            if spec.merge == "sum":
                if isinstance(mine, np.ndarray):
                    mine += theirs
                else:
                    setattr(self, name, mine + theirs)
            elif spec.merge == "cat":
                mine.extend(_copy(x) for x in theirs)
            elif spec.merge == "nested":
                mine.merge_from(theirs)
            else:
                for key, value in theirs.items():
                    if key not in mine:
                        mine[key] = spec.default()
                    mine[key].merge_from(value)

    # -- serialise -----------------------------------------------------------------------------
    def state_items(self) -> dict[str, Any]:
        """The state as a flat dict of numpy arrays and Python scalars (copies)."""
        out: dict[str, Any] = {}
        for name, spec in self._specs().items():
            value = getattr(self, name)
            if spec.merge == "sum":
                out[name] = value.copy() if isinstance(value, np.ndarray) else value
            elif spec.merge == "cat":
                out.update(_cat_items(name, value, spec))
            elif spec.merge == "nested":
                out.update({f"{name}.{k}": v for k, v in value.state_items().items()})
            else:
                out[name] = np.array(sorted(value), dtype=str)
                for key in sorted(value):
                    out.update({f"{name}.{key}.{k}": v for k, v in value[key].state_items().items()})
        return out

    def load_state_items(self, d: Mapping[str, Any]) -> None:
        """Inverse of :meth:`state_items` (accepts what ``np.load`` returns for it)."""
        for name, spec in self._specs().items():
            if spec.merge == "sum":
                setattr(self, name, _load_sum(d[name], spec.default))
            elif spec.merge == "cat":
                setattr(self, name, _load_cat(name, d, spec))
            elif spec.merge == "nested":
                child = spec.default()
                child.load_state_items(_sub(d, f"{name}."))
                setattr(self, name, child)
            else:
                groups: dict[str, StateSet] = {}
                for key in (str(x) for x in np.asarray(d[name]).reshape(-1)):
                    child = spec.default()
                    child.load_state_items(_sub(d, f"{name}.{key}."))
                    groups[key] = child
                setattr(self, name, groups)


def _copy(x: Any) -> Any:
    return x.copy() if isinstance(x, np.ndarray) else x


def _sub(d: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix):]: v for k, v in d.items() if k.startswith(prefix)}


def _cat_items(name: str, items: list, spec: _Spec) -> dict[str, Any]:
    if spec.item_shape is not None:
        arr = np.array(items, dtype=spec.dtype) if items else np.zeros((0, *spec.item_shape), spec.dtype)
        return {name: arr.reshape((len(items), *spec.item_shape))}
    lengths = np.array([np.asarray(a).size for a in items], np.int64)
    flat = (np.concatenate([np.asarray(a, spec.dtype).reshape(-1) for a in items]) if items
            else np.zeros(0, spec.dtype))
    return {name: flat, f"{name}.lengths": lengths}


def _load_cat(name: str, d: Mapping[str, Any], spec: _Spec) -> list:
    arr = np.asarray(d[name])
    if spec.item_shape is not None:
        arr = np.array(arr, dtype=spec.dtype).reshape((-1, *spec.item_shape))
        if spec.item_shape == ():
            return [x.item() if spec.dtype is not str else str(x) for x in arr]
        return list(arr)
    lengths = np.asarray(d[f"{name}.lengths"], np.int64).reshape(-1)
    flat = np.array(arr, dtype=spec.dtype).reshape(-1)
    if int(lengths.sum()) != flat.size:
        raise ValueError(f"state {name!r}: lengths sum to {int(lengths.sum())} but {flat.size} values are stored")
    return list(np.split(flat, np.cumsum(lengths)[:-1])) if lengths.size else []


def _load_sum(value: Any, default: Any) -> Any:
    if isinstance(default, np.ndarray):
        return np.array(value, dtype=default.dtype).reshape(default.shape)
    return type(default)(np.asarray(value).item())

