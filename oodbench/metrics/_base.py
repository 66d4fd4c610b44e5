"""Common machinery of every metric accumulator (torchmetrics-style ``update``/``merge``/``compute``).

Every accumulator keeps its state in plain numpy arrays and scalars so that it can be

* saved and resumed (``np.savez(path, **acc.state_dict())`` then ``Cls.from_state(np.load(path))``),
* merged in-process (``a.merge(b)``: the metrics of the merged state equal those of the whole), and
* merged across processes: ``torch.distributed.all_gather_object`` the state dicts and call
  ``Cls.merge_states(list_of_states)`` on every rank.

Each subclass declares its state entries once, with their merge rule
(:meth:`~._state.StateSet.add_state`: ``sum``, ``cat``, ``nested``, ``keyed``); reset, state dicts and
merging are generic (:mod:`._state`). ``cat`` entries are merged in list order, which for
order-sensitive protocols (SMIYC) is the frame order.
"""
from __future__ import annotations

import warnings
from typing import Any, ClassVar, Iterable, Mapping

import numpy as np

from oodbench.contracts import ContractError
from oodbench.errors import OodbenchError

from ._state import StateSet

__all__ = ["Accumulator", "MetricInputError", "StateError"]


class MetricInputError(ContractError):
    """Input that no metric can be computed from (degenerate labels, NaN scores, shape mismatch).

    The message names the frame (``frame_id`` or its update index) and what is wrong.
    """


class StateError(OodbenchError, ValueError):
    """A state dict that does not belong to this accumulator (wrong class, version or config)."""


class Accumulator(StateSet):
    """Base class: subclasses implement ``update`` and ``compute`` and declare their state.

    A subclass sets its configuration, calls ``super().__init__()`` and declares every state entry
    with :meth:`add_state` (see :mod:`._state` for the merge rules); ``_config()`` returns the
    constructor keyword arguments (str/int/float only), which must match for two states to merge.
    """

    #: protocol name (recorded in every result as ``protocol``).
    name: ClassVar[str] = ""
    #: protocol version (recorded in every result as ``protocol_version``).
    version: ClassVar[str] = ""

    def __init__(self) -> None:
        self._num_updates = 0

    def _config(self) -> dict[str, Any]:
        return {}

    def update(self, *args: Any, **kwargs: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def compute(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- shared API ------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every update (the configuration is kept)."""
        self._num_updates = 0
        self.reset_state()

    def _frame_name(self, frame_id: Any) -> str:
        return f"frame {frame_id!r}" if frame_id is not None else f"frame #{self._num_updates}"

    def _result(self, values: dict[str, Any]) -> dict[str, Any]:
        out = {"protocol": self.name, "protocol_version": self.version}
        out.update(values)
        return out

    def merge(self, other: "Accumulator") -> "Accumulator":
        """Add ``other``'s state to ``self`` (``other`` is unchanged); returns ``self``."""
        if type(other) is not type(self):
            raise StateError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        if other._config() != self._config():
            raise StateError(
                f"cannot merge {type(self).__name__} with different configurations: "
                f"{self._config()} vs {other._config()}"
            )
        self.merge_from(other)
        self._num_updates += other._num_updates
        return self

    def state_dict(self) -> dict[str, Any]:
        """The state as plain numpy arrays / Python scalars / strings (``np.savez``-able)."""
        d: dict[str, Any] = {
            "class": type(self).__name__,
            "protocol": self.name,
            "protocol_version": self.version,
            "num_updates": int(self._num_updates),
        }
        for k, v in self._config().items():
            d[f"config.{k}"] = v
        for k, v in self.state_items().items():
            d[f"state.{k}"] = v
        return d

    def load_state_dict(self, d: Mapping[str, Any]) -> None:
        """Replace the state by ``d`` (from :meth:`state_dict`, possibly via ``np.load``)."""
        cls = _scalar(d.get("class"))
        if cls != type(self).__name__:
            raise StateError(f"state dict is for {cls!r}, not {type(self).__name__}")
        ver = _scalar(d.get("protocol_version"))
        if ver != self.version:
            raise StateError(
                f"state dict has protocol version {ver!r}; this {type(self).__name__} is {self.version!r}"
            )
        cfg = {k[len("config."):]: _scalar(v) for k, v in d.items() if k.startswith("config.")}
        mine = self._config()
        if cfg != mine:
            raise StateError(f"state dict config {cfg} differs from this accumulator's {mine}")
        self._num_updates = int(_scalar(d.get("num_updates", 0)))
        self.load_state_items({k[len("state."):]: v for k, v in d.items() if k.startswith("state.")})

    @classmethod
    def from_state(cls, d: Mapping[str, Any]) -> "Accumulator":
        """Build an accumulator (with its configuration) from a :meth:`state_dict`."""
        cfg = {k[len("config."):]: _scalar(v) for k, v in d.items() if k.startswith("config.")}
        obj = cls(**cfg)
        obj.load_state_dict(d)
        return obj

    @classmethod
    def merge_states(cls, states: Iterable[Mapping[str, Any]]) -> "Accumulator":
        """Merge state dicts (e.g. gathered from all ranks) **in list order** into one accumulator."""
        states = list(states)
        if not states:
            raise StateError(f"{cls.__name__}.merge_states needs at least one state dict")
        acc = cls.from_state(states[0])
        for s in states[1:]:
            acc.merge(cls.from_state(s))
        return acc


def _scalar(v: Any) -> Any:
    """Unwrap 0-d arrays that ``np.load`` returns for scalars and strings."""
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v.item()
    if isinstance(v, np.generic):
        v = v.item()
    return v


def warn_nan(what: str) -> float:
    """Return NaN with a warning (the documented result for an undefined mean)."""
    warnings.warn(f"{what} is undefined (no items); returning NaN", RuntimeWarning, stacklevel=3)
    return float("nan")
