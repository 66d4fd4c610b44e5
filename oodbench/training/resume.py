"""Resume guards: a resumed run must continue the run that wrote the checkpoint.

* :func:`reconcile_config` -- the configuration fields (:func:`~.config.runtime_fields` are the
  others) must equal the checkpoint's; otherwise :class:`ResumeError` lists the differing flags
  (one line, and it leads with the model when the checkpoint holds another model's weights), or,
  with ``--resume-anyway``, the checkpoint's values replace the asked ones and the ignored flags
  are reported, so ``config.json`` and later checkpoints keep describing the run that exists;
* :func:`check_state_dict` -- weights that do not fit the model: counts of missing, unexpected and
  reshaped keys with a few examples, instead of torch's list of every key;
* :func:`remove_stale_temporaries` -- ``.tmp-*`` files that a kill during an atomic write
  (:mod:`oodbench.atomic`) left in the output folder; they are never resumed from (resume reads
  only ``last.pth`` or an explicit path) but a torn 0.7 GB checkpoint should not stay behind.
"""
from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path
from typing import Any, Mapping, NamedTuple

from oodbench.cli_config import config_to_dict, unwrap_optional

from .checkpointing import CheckpointError
from .config import runtime_fields

__all__ = ["Difference", "ResumeError", "check_state_dict", "config_differences", "describe_ignored",
           "reconcile_config", "remove_stale_temporaries"]

_EXAMPLES = 3  # key names quoted per kind of mismatch
_MAX_LISTED = 8  # differing flags quoted in one message


class ResumeError(CheckpointError):
    """Resuming would continue another run than the one asked for (the message names the file and flags)."""


class Difference(NamedTuple):
    """A configuration field whose checkpoint value differs from the asked one."""

    name: str
    stored: Any
    asked: Any

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def _show(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def config_differences(cfg: Any, stored: Mapping[str, Any]) -> list[Difference]:
    """Configuration fields of ``cfg`` whose value differs from ``stored`` (a checkpoint's config).

    Fields the checkpoint does not record (written before the field existed) cannot be compared
    and are skipped; runtime fields and fields kept off the config dict (callbacks) never count.
    """
    runtime = runtime_fields(cfg)
    asked = config_to_dict(cfg)
    return [Difference(name, stored[name], value) for name, value in asked.items()
            if name not in runtime and name in stored and stored[name] != value]


def _with_stored(cfg: Any, diffs: list[Difference]) -> Any:
    hints = typing.get_type_hints(type(cfg))
    updates = {}
    for d in diffs:
        tp, _ = unwrap_optional(hints[d.name])
        value = d.stored
        if isinstance(value, list) and typing.get_origin(tp) is tuple:
            value = tuple(value)
        updates[d.name] = value
    return dataclasses.replace(cfg, **updates)


def reconcile_config(cfg: Any, payload: Mapping[str, Any], path: str | os.PathLike,
                     model_field: str | None = None) -> tuple[Any, list[Difference]]:
    """The config to resume with, and the asked values it ignores (empty unless ``--resume-anyway``).

    Raises :class:`ResumeError` when configuration fields differ and ``cfg.resume_anyway`` is off.
    ``model_field`` names the field that selects the architecture (its mismatch leads the message).
    A checkpoint without a stored config (written by hand) is not checked.
    """
    stored = payload.get("config")
    if not isinstance(stored, Mapping):
        return cfg, []
    diffs = config_differences(cfg, stored)
    if not diffs:
        return cfg, []
    if getattr(cfg, "resume_anyway", False):
        return _with_stored(cfg, diffs), diffs
    model = next((d for d in diffs if d.name == model_field), None)
    others = [d for d in diffs if d is not model]
    listed = "; ".join(f"{d.flag} {_show(d.stored)} -> {_show(d.asked)}" for d in others[:_MAX_LISTED])
    if len(others) > _MAX_LISTED:
        listed += f"; and {len(others) - _MAX_LISTED} more"
    if model is not None:
        msg = f"{path} holds {model.stored} weights, asked for {model.asked}"
        if others:
            msg += f" (other flags differ too, checkpoint -> asked: {listed})"
        msg += (f"; for a {model.asked} run use another --out-dir or --resume no, or add --resume-anyway "
                f"to continue the {model.stored} run with its stored configuration")
    else:
        msg = (f"{path}: the configuration differs from the checkpoint's (checkpoint -> asked: {listed}); "
               "resume with the checkpoint's values, add --resume-anyway to continue with them, "
               "or start a new run with another --out-dir or --resume no")
    raise ResumeError(msg)


def describe_ignored(path: str | os.PathLike, diffs: list[Difference]) -> str:
    """The one-line notice of ``--resume-anyway`` (which asked values were ignored)."""
    ignored = ", ".join(f"{d.flag} {_show(d.asked)} (kept {_show(d.stored)})" for d in diffs)
    return f"--resume-anyway: continuing {path} with its stored configuration; ignored {ignored}"


def _examples(keys: list[str]) -> str:
    shown = ", ".join(keys[:_EXAMPLES])
    return shown + (", ..." if len(keys) > _EXAMPLES else "")


def check_state_dict(expected: Mapping[str, Any], state: Mapping[str, Any], path: str | os.PathLike,
                     holds: str | None = None) -> None:
    """Raise a one-line :class:`CheckpointError` if ``state`` does not fit a model whose state dict is ``expected``."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    reshaped = [k for k in expected if k in state and hasattr(state[k], "shape") and hasattr(expected[k], "shape")
                and tuple(state[k].shape) != tuple(expected[k].shape)]
    if not (missing or unexpected or reshaped):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (e.g. {_examples(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {_examples(unexpected)})")
    if reshaped:
        k = reshaped[0]
        parts.append(f"{len(reshaped)} keys with another shape (e.g. {k}: checkpoint {list(state[k].shape)}, "
                     f"model {list(expected[k].shape)})")
    what = f" (it holds {holds} weights)" if holds else ""
    raise CheckpointError(f"checkpoint {path}{what} does not fit the model: {'; '.join(parts)}")


def remove_stale_temporaries(out_dir: str | os.PathLike) -> list[Path]:
    """Delete the ``.tmp-*`` files an interrupted atomic write left in ``out_dir``; return them.

    Call it only before this run writes anything there (rank 0, at start): two runs writing into
    one output folder at once are not supported anyway.
    """
    removed = []
    folder = Path(out_dir)
    if folder.is_dir():
        for p in sorted(folder.glob(".tmp-*")):
            if p.is_file() or p.is_symlink():
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed
